//! `dataplane-collector top`: a live view of one node from its daemon's `/metrics` — ports and
//! pods by traffic, OpenFlow flows with their cookies, drops and the datapath's health, as rates
//! between two reads. A terminal gets the live view ([`tui`]); anything else (a pipe, a file,
//! `--once`) gets one plain-text snapshot ([`plain`]).

pub mod model;
pub mod plain;
pub mod prom;
pub mod tui;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// `dataplane-collector top`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The daemon's /metrics (plain HTTP).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:9477/metrics"
    )]
    pub url: String,
    /// Time between reads (and the window rates are computed over).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::flagvalue::parse_duration)]
    pub interval: Duration,
    /// Print one plain-text snapshot (two reads `--interval` apart) and exit, even on a
    /// terminal. Without a terminal this is what `top` does anyway.
    #[arg(long)]
    pub once: bool,
    /// Flows shown in the plain-text snapshot.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub flows: usize,
}

/// Why `top` stopped.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("--url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: prom::ParseError,
    },
    #[error("--interval must be more than 0")]
    Interval,
    #[error("the terminal: {0}")]
    Terminal(#[source] std::io::Error),
    #[error("cannot start: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Reads `/metrics` from one daemon.
pub struct Client {
    url: String,
    uri: hyper::Uri,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<bytes::Bytes>,
    >,
    timeout: Duration,
}

impl Client {
    pub fn new(url: &str, timeout: Duration) -> Result<Client, TopError> {
        let bad = |reason: &str| TopError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        if uri.host().is_none() {
            return Err(bad("no host"));
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Ok(Client {
            url: url.to_owned(),
            uri,
            client,
            timeout,
        })
    }

    /// One read: the body, at most [`prom::MAX_BODY_BYTES`] (`top_response_bytes`).
    pub async fn get(&self) -> Result<String, TopError> {
        self.get_bounded(prom::MAX_BODY_BYTES).await
    }

    async fn get_bounded(&self, max: usize) -> Result<String, TopError> {
        use http_body_util::BodyExt as _;
        let err = |reason: String| TopError::Fetch {
            url: self.url.clone(),
            reason,
        };
        let req = hyper::Request::get(self.uri.clone())
            .header(hyper::header::ACCEPT, "text/plain;version=0.0.4")
            .body(http_body_util::Empty::new())
            .map_err(|e| err(format!("bad request: {e}")))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| err(format!("cannot get an answer: {}", chain(&e))))?;
            let status = resp.status().as_u16();
            let body = http_body_util::Limited::new(resp.into_body(), max)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        crate::limits::exceeded("top_response_bytes");
                        err(format!("the answer is larger than {max} bytes"))
                    } else {
                        err(format!("cannot read the answer: {}", chain(&*e)))
                    }
                })?
                .to_bytes();
            let text = String::from_utf8_lossy(&body).into_owned();
            if status != 200 {
                return Err(TopError::Status {
                    url: self.url.clone(),
                    status,
                    body: text.trim().chars().take(200).collect(),
                });
            }
            Ok(text)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| err(format!("no answer within {:?}", self.timeout)))?
    }

    /// One read, parsed.
    pub async fn snapshot(&self) -> Result<model::Snapshot, TopError> {
        let text = self.get().await?;
        let samples = prom::parse(&text, model::wanted, prom::MAX_SERIES).map_err(|source| {
            TopError::Parse {
                url: self.url.clone(),
                source,
            }
        })?;
        Ok(model::Snapshot::from_samples(&samples))
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::registry::error_chain(e)
}

/// Runs `top`: the live view on a terminal, else (or with `--once`) one plain snapshot.
pub fn run(args: TopArgs) -> Result<(), TopError> {
    if args.interval.is_zero() {
        return Err(TopError::Interval);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TopError::Runtime)?;
    // A read may take as long as a scrape; never less than the interval.
    let client = Client::new(&args.url, args.interval.max(Duration::from_secs(15)))?;
    if args.once || !std::io::stdout().is_terminal() {
        let first = runtime.block_on(client.snapshot())?;
        let start = Instant::now();
        std::thread::sleep(args.interval);
        let second = runtime.block_on(client.snapshot())?;
        let secs = start.elapsed().as_secs_f64();
        let view = model::View::new(Some(&first), &second, secs, model::SortKey::default());
        let mut out = String::new();
        plain::render(&view, &args, secs, &mut out);
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth a message.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        return Ok(());
    }
    tui::run(&args, &runtime, &client)
}

/// `1.2 MB/s`-style numbers: SI prefixes, three significant digits.
pub fn human(v: f64, unit: &str) -> String {
    let (v, p) = if v >= 1e12 {
        (v / 1e12, "T")
    } else if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if p.is_empty() && v.fract() == 0.0 {
        format!("{v:.0}{unit}")
    } else if v >= 100.0 {
        format!("{v:.0}{p}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{p}{unit}")
    } else {
        format!("{v:.2}{p}{unit}")
    }
}

/// A rate, or `-` when there is none yet.
pub fn rate(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |v| human(v, unit))
}

/// `TopArgs` parsed from `top`'s own arguments, for the unit tests (without going through
/// `cli`, which depends on this module).
#[cfg(test)]
pub(crate) fn test_args(args: &[&str]) -> TopArgs {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Top {
        #[command(flatten)]
        args: TopArgs,
    }
    let argv = std::iter::once("top").chain(args.iter().copied());
    Top::try_parse_from(argv).expect("top's arguments").args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(human(0.0, "B/s"), "0B/s");
        assert_eq!(human(999.0, ""), "999");
        assert_eq!(human(1.5, ""), "1.50");
        assert_eq!(human(1234.0, "B"), "1.23kB");
        assert_eq!(human(12_345_678.0, "B/s"), "12.3MB/s");
        assert_eq!(human(2e12, ""), "2.00T");
        assert_eq!(rate(None, "B/s"), "-");
    }

    #[test]
    fn urls_are_checked() {
        assert!(Client::new("http://127.0.0.1:9477/metrics", Duration::from_secs(1)).is_ok());
        for bad in ["https://x/metrics", "not a url", "/metrics"] {
            assert!(
                matches!(
                    Client::new(bad, Duration::from_secs(1)),
                    Err(TopError::Url { .. })
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = "a 1\n".repeat(1000);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            }
        });
        let c =
            Client::new(&format!("http://{addr}/metrics"), Duration::from_secs(5)).expect("client");
        assert_eq!(c.get_bounded(4000).await.map(|b| b.len()).ok(), Some(4000));
        let before = crate::limits::count("top_response_bytes");
        let err = c.get_bounded(3999).await.expect_err("too large");
        assert!(err.to_string().contains("larger than 3999 bytes"), "{err}");
        assert_eq!(crate::limits::count("top_response_bytes"), before + 1);
    }
}
