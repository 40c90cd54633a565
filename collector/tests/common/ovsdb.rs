//! A fake ovsdb-server replaying a session recorded from a real one
//! (`fixtures/ovsdb/session.jsonl`; `records_the_golden_ovsdb_session` in the integration
//! tests records it).

use dataplane_collector::ovsdb::proto::Framer;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// The recorded session: per client method (`monitor`, `echo`), the id the client gave and
/// what the server sent after it, in order.
pub fn recorded() -> HashMap<String, (Value, Vec<Value>)> {
    let path = Path::new(super::FIXTURES).join("ovsdb/session.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: HashMap<String, (Value, Vec<Value>)> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let message = v["message"].clone();
        match v["from"].as_str() {
            Some("client") => {
                let method = message["method"].as_str().unwrap_or_default().to_owned();
                out.insert(method.clone(), (message["id"].clone(), Vec::new()));
                current = Some(method);
            }
            Some("server") => {
                if let Some(entry) = current.as_ref().and_then(|m| out.get_mut(m)) {
                    entry.1.push(message);
                }
            }
            other => panic!("{}: a line from {other:?}", path.display()),
        }
    }
    out
}

/// Serves the recorded session at `path` until the runtime ends: each request the client
/// sends is answered with what the server sent after the same method in the recording, the
/// reply carrying the client's id. Anything else from the client is read and ignored.
pub async fn serve(path: PathBuf) {
    let session = recorded();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let session = session.clone();
            tokio::spawn(async move {
                let mut framer = Framer::default();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    while let Ok(Some(request)) = framer.next_value() {
                        let Some((recorded_id, sent)) =
                            request["method"].as_str().and_then(|m| session.get(m))
                        else {
                            continue;
                        };
                        for m in sent {
                            let mut m = m.clone();
                            if m["id"] == *recorded_id {
                                m["id"] = request["id"].clone();
                            }
                            if sock.write_all(m.to_string().as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => framer.push(&buf[..n]),
                    }
                }
            });
        }
    });
}
