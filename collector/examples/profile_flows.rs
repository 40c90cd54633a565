use dataplane_collector::openflow::message::{FlowDecoder, MultipartType};
use dataplane_collector::openflow::{Client, Endpoint};
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = std::env::args().nth(1).unwrap();
    let ep = Endpoint::Unix(path.into());
    for _ in 0..5 {
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut c = Client::connect(&ep, deadline).await.unwrap();
        let t1 = Instant::now();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        c.multipart(MultipartType::Flow, &mut |b| {
            bodies.push(b.to_vec());
            Ok(())
        })
        .await
        .unwrap();
        let t2 = Instant::now();
        let mut dec = FlowDecoder::new(false);
        let mut flows = Vec::new();
        for b in &bodies {
            dec.decode(b, &mut flows).unwrap();
        }
        let t3 = Instant::now();
        let mut dec = FlowDecoder::new(true);
        let mut flows2 = Vec::new();
        for b in &bodies {
            dec.decode(b, &mut flows2).unwrap();
        }
        let t4 = Instant::now();
        let snap = dataplane_collector::sources::openflow::Snapshot {
            bridges: vec![dataplane_collector::sources::openflow::BridgeResult {
                bridge: "br0".into(),
                endpoint: ep.clone(),
                outcome: Ok(dataplane_collector::sources::openflow::BridgeData {
                    flows,
                    read_flows: true,
                    ..Default::default()
                }),
            }],
        };
        let mut w = dataplane_collector::exposition::Writer::new();
        dataplane_collector::sources::openflow::encode::encode(&snap, false, &mut w);
        let t5 = Instant::now();
        let out = w.into_bytes();
        println!(
            "connect {:?} fetch {:?} decode {:?} decode+actions {:?} encode {:?} ({} bytes)",
            t1 - t0,
            t2 - t1,
            t3 - t2,
            t4 - t3,
            t5 - t4,
            out.len()
        );
    }
}
