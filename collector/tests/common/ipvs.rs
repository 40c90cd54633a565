//! The IPVS capture (`fixtures/ipvs/read.bin`): its datagrams, and a replay of them as the
//! source's read decodes them.

use dataplane_collector::netlink::{self, Message, genl};
use dataplane_collector::sources::ipvs::ServiceData;
use dataplane_collector::sources::ipvs::parse::{self, Destination, ParseError, Service};
use std::path::PathBuf;

/// A file of `fixtures/ipvs`.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ipvs")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The datagrams of `read.bin` ([`netlink::capture`]).
pub fn datagrams() -> Vec<Vec<u8>> {
    let bin = fixture("read.bin");
    netlink::capture::decode(&bin)
        .unwrap_or_else(|e| panic!("read.bin: {e}"))
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// The data messages of each dump, in order.
pub fn dumps(datagrams: &[Vec<u8>]) -> Result<Vec<Vec<Message<'_>>>, ParseError> {
    let d: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
    Ok(netlink::capture::replies(&d)?)
}

/// Replays a read: the family dump, the service dump, one destination dump per service.
pub fn replay(datagrams: &[Vec<u8>]) -> Result<Vec<ServiceData>, ParseError> {
    let dumps = dumps(datagrams)?;
    assert!(dumps.len() >= 2, "{} dumps", dumps.len());
    let mut family = None;
    for m in &dumps[0] {
        if let Some((name, id)) = genl::parse_family(m).map_err(ParseError::from)?
            && name == parse::IPVS_FAMILY
        {
            family = Some(id);
        }
    }
    let family = family.unwrap_or_else(|| panic!("no IPVS in the family dump"));
    let services: Vec<Service> = dumps[1]
        .iter()
        .map(|m| {
            assert_eq!(m.msg_type, family);
            parse::parse_service(m)
        })
        .collect::<Result<_, _>>()?;
    assert_eq!(
        dumps.len(),
        2 + services.len(),
        "one destination dump per service"
    );
    let mut out = Vec::new();
    for (svc, msgs) in services.into_iter().zip(&dumps[2..]) {
        let destinations: Vec<Destination> = msgs
            .iter()
            .map(|m| parse::parse_destination(m, svc.key.af()))
            .collect::<Result<_, _>>()?;
        out.push(ServiceData {
            service: svc,
            destinations,
        });
    }
    Ok(out)
}
