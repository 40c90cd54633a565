//! A fake ovs-vswitchd control socket that answers `ovs-appctl` commands with the replies
//! captured from a real ovs-vswitchd 3.1 (`fixtures/vswitchd/<command>.txt`, the command's `/`
//! and spaces written as `-`), and any other command as ovs-vswitchd answers an unknown one.

use dataplane_collector::ovsdb::proto::Framer;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// The fixture file for a request: `dpctl/show` with `-s` → `dpctl-show-s.txt`; a datapath
/// argument (`netdev@ovs-netdev`) is not part of the name.
fn fixture(method: &str, params: &[Value]) -> PathBuf {
    let mut name = method.replace('/', "-");
    for p in params
        .iter()
        .filter_map(Value::as_str)
        .filter(|p| !p.contains('@'))
    {
        name.push('-');
        name.push_str(p.trim_start_matches('-'));
    }
    Path::new(super::FIXTURES)
        .join("vswitchd")
        .join(format!("{name}.txt"))
}

/// Serves at `path` until the runtime ends.
pub async fn serve(path: PathBuf) {
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut framer = Framer::default();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    while let Ok(Some(req)) = framer.next_value() {
                        let method = req["method"].as_str().unwrap_or_default();
                        let params = req["params"].as_array().cloned().unwrap_or_default();
                        let reply = match std::fs::read_to_string(fixture(method, &params)) {
                            Ok(text) => json!({"id": req["id"], "result": text, "error": null}),
                            Err(_) => json!({"id": req["id"], "result": null,
                                "error": format!("\"{method}\" is not a valid command (use list-commands to see a list of valid commands)\n")}),
                        };
                        if sock.write_all(reply.to_string().as_bytes()).await.is_err() {
                            return;
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
