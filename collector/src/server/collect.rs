//! `/metrics?collect[]=NAME` and `/metrics?exclude[]=NAME`, as node_exporter has them: only the
//! named collectors run, or every enabled one but the excluded. The scrape's own series
//! (`dataplane_collector_scrape_success` and the others per collector) then cover only the
//! collectors that ran.

/// `collect[]` and `exclude[]` values one request may give, counted together.
pub const MAX_COLLECTOR_PARAMS: usize = 64;
/// Longest `collect[]`/`exclude[]` value, in bytes (collector names are short words).
pub const MAX_COLLECTOR_PARAM_BYTES: usize = 64;

const COLLECT: &str = "collect[]";
const EXCLUDE: &str = "exclude[]";

/// Why a request's `collect[]`/`exclude[]` was refused (HTTP 400; the message is the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "too many collect[]/exclude[] values: {given}, at most {MAX_COLLECTOR_PARAMS} in one request"
    )]
    TooMany { given: usize },
    #[error(
        "a {param} value of {len} bytes: collector names are at most {MAX_COLLECTOR_PARAM_BYTES}"
    )]
    TooLong { param: &'static str, len: usize },
    #[error("collect[] and exclude[] cannot be given together")]
    Both,
    #[error("unknown collector {name:?} in {param}; known collectors: {known}")]
    Unknown {
        param: &'static str,
        name: String,
        known: String,
    },
    #[error(
        "the {name} collector is disabled (--no-collector.{name}); enabled collectors: {enabled}"
    )]
    Disabled { name: String, enabled: String },
}

/// The collectors a `/metrics` request runs: `None` when it names none in `collect[]` or
/// `exclude[]` (every enabled one). `declared` are every collector this build knows (a disabled
/// one too), `enabled` those that run, in registry order; the answer keeps that order. Empty
/// values are ignored.
pub fn select(
    declared: &[&'static str],
    enabled: &[&'static str],
    query: &[(String, String)],
) -> Result<Option<Vec<&'static str>>, FilterError> {
    let mut collect: Vec<&str> = Vec::new();
    let mut exclude: Vec<&str> = Vec::new();
    let mut given = 0usize;
    for (k, v) in query {
        let (param, into) = match k.as_str() {
            COLLECT => (COLLECT, &mut collect),
            EXCLUDE => (EXCLUDE, &mut exclude),
            _ => continue,
        };
        given += 1;
        if given > MAX_COLLECTOR_PARAMS {
            crate::limits::exceeded("http_collector_params");
            let given = query
                .iter()
                .filter(|(k, _)| k == COLLECT || k == EXCLUDE)
                .count();
            return Err(FilterError::TooMany { given });
        }
        if v.len() > MAX_COLLECTOR_PARAM_BYTES {
            crate::limits::exceeded("http_collector_params");
            return Err(FilterError::TooLong {
                param,
                len: v.len(),
            });
        }
        if v.is_empty() {
            continue;
        }
        if !declared.contains(&v.as_str()) && !enabled.contains(&v.as_str()) {
            let mut known: Vec<&str> = declared.to_vec();
            known.extend(enabled.iter().filter(|e| !declared.contains(e)));
            return Err(FilterError::Unknown {
                param,
                name: v.clone(),
                known: known.join(", "),
            });
        }
        into.push(v.as_str());
    }
    match (collect.is_empty(), exclude.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Err(FilterError::Both),
        (false, true) => {
            if let Some(off) = collect.iter().find(|c| !enabled.contains(c)) {
                return Err(FilterError::Disabled {
                    name: (*off).to_owned(),
                    enabled: enabled.join(", "),
                });
            }
            Ok(Some(
                enabled
                    .iter()
                    .copied()
                    .filter(|e| collect.contains(e))
                    .collect(),
            ))
        }
        // Excluding a disabled collector excludes nothing.
        (true, false) => Ok(Some(
            enabled
                .iter()
                .copied()
                .filter(|e| !exclude.contains(e))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[&str] = &["openflow", "ovsdb", "ipvs", "conntrack"];
    const ENABLED: &[&str] = &["openflow", "ovsdb", "ipvs"];

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn collect_and_exclude_select_in_registry_order() {
        assert_eq!(select(DECLARED, ENABLED, &q(&[("target", "x")])), Ok(None));
        assert_eq!(
            select(
                DECLARED,
                ENABLED,
                &q(&[("collect[]", "ipvs"), ("collect[]", "openflow")])
            ),
            Ok(Some(vec!["openflow", "ipvs"]))
        );
        assert_eq!(
            select(
                DECLARED,
                ENABLED,
                &q(&[("collect[]", "ipvs"), ("collect[]", "ipvs")])
            ),
            Ok(Some(vec!["ipvs"]))
        );
        assert_eq!(
            select(DECLARED, ENABLED, &q(&[("exclude[]", "ovsdb")])),
            Ok(Some(vec!["openflow", "ipvs"]))
        );
        // A disabled collector can be excluded (nothing to do) but not collected.
        assert_eq!(
            select(DECLARED, ENABLED, &q(&[("exclude[]", "conntrack")])),
            Ok(Some(vec!["openflow", "ovsdb", "ipvs"]))
        );
        assert_eq!(
            select(DECLARED, ENABLED, &q(&[("collect[]", "conntrack")])),
            Err(FilterError::Disabled {
                name: "conntrack".into(),
                enabled: "openflow, ovsdb, ipvs".into()
            })
        );
        // Empty values are no filter at all.
        assert_eq!(
            select(DECLARED, ENABLED, &q(&[("exclude[]", "")])),
            Ok(None)
        );
        assert_eq!(
            select(
                DECLARED,
                ENABLED,
                &q(&[("collect[]", "ipvs"), ("exclude[]", "ovsdb")])
            ),
            Err(FilterError::Both)
        );
    }

    #[test]
    fn unknown_names_are_refused_naming_the_known_ones() {
        let err = select(DECLARED, ENABLED, &q(&[("collect[]", "nope")])).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown collector \"nope\" in collect[]; known collectors: openflow, ovsdb, ipvs, conntrack"
        );
        let err = select(DECLARED, ENABLED, &q(&[("exclude[]", "IPVS")])).expect_err("unknown");
        assert!(err.to_string().contains("\"IPVS\" in exclude[]"), "{err}");
    }

    #[test]
    fn values_are_bounded() {
        let before = crate::limits::count("http_collector_params");
        let many: Vec<(String, String)> = (0..=MAX_COLLECTOR_PARAMS)
            .map(|_| ("exclude[]".to_owned(), "ipvs".to_owned()))
            .collect();
        assert_eq!(
            select(DECLARED, ENABLED, &many),
            Err(FilterError::TooMany {
                given: MAX_COLLECTOR_PARAMS + 1
            })
        );
        assert_eq!(
            select(DECLARED, ENABLED, &many[..MAX_COLLECTOR_PARAMS]),
            Ok(Some(vec!["openflow", "ovsdb"]))
        );
        let long = "x".repeat(MAX_COLLECTOR_PARAM_BYTES + 1);
        assert_eq!(
            select(DECLARED, ENABLED, &q(&[("collect[]", &long)])),
            Err(FilterError::TooLong {
                param: "collect[]",
                len: MAX_COLLECTOR_PARAM_BYTES + 1
            })
        );
        assert!(crate::limits::count("http_collector_params") >= before + 2);
    }
}
