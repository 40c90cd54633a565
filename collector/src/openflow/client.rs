//! The OpenFlow connection: connect (unix or TCP), HELLO, multipart requests followed to their
//! last reply, ECHO answered on the way. Every wait is bounded by the caller's deadline.

use super::DecodeError;
use super::message::{self, ErrorMsg, HEADER_LEN, Header, MultipartType, msg_type};
use bytes::{Buf, BytesMut};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

/// Where a switch listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// What went wrong talking to a switch. Every variant names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error("{endpoint}: timed out while {stage}")]
    Timeout {
        endpoint: Endpoint,
        stage: &'static str,
    },
    #[error("{endpoint}: the switch closed the connection while {stage}")]
    Closed {
        endpoint: Endpoint,
        stage: &'static str,
    },
    #[error("{endpoint}: i/o error while {stage}: {source}")]
    Io {
        endpoint: Endpoint,
        stage: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{endpoint}: the switch does not offer OpenFlow 1.3 (it offers {offered}); \
         enable it with `ovs-vsctl set bridge BRIDGE protocols=OpenFlow10,OpenFlow13`"
    )]
    Version { endpoint: Endpoint, offered: String },
    #[error("{endpoint}: the switch rejected the {request} request: {error}")]
    Rejected {
        endpoint: Endpoint,
        request: &'static str,
        error: ErrorMsg,
    },
    #[error("{endpoint}: malformed {what} from the switch: {source}")]
    Decode {
        endpoint: Endpoint,
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    #[error(
        "{endpoint}: the switch sent more than {limit} {what} in its replies ({setting}); \
         the rest was not read"
    )]
    TooLarge {
        endpoint: Endpoint,
        what: &'static str,
        limit: usize,
        setting: &'static str,
    },
    #[error("{endpoint}: unexpected message (version {version}, type {msg_type}) while {stage}")]
    Unexpected {
        endpoint: Endpoint,
        version: u8,
        msg_type: u8,
        stage: &'static str,
    },
}

impl ClientError {
    /// True when nothing listens at the endpoint (no such socket, connection refused): the
    /// switch is not there, rather than broken.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::Connect { source, .. }
            if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused))
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read_buf(buf).await,
            Stream::Tcp(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(data).await,
            Stream::Tcp(s) => s.write_all(data).await,
        }
    }
}

/// Receives each multipart reply body with the kind of request it answers.
pub type ReplyHandler<'a> = dyn FnMut(MultipartType, &[u8]) -> Result<(), DecodeError> + Send + 'a;

/// An OpenFlow 1.3 session with one switch (one bridge).
pub struct Client {
    stream: Stream,
    endpoint: Endpoint,
    buf: BytesMut,
    next_xid: u32,
    deadline: Instant,
    limits: ReplyLimits,
}

const READ_CHUNK: usize = 256 * 1024;

/// How much one round of requests may bring back: the switch decides how much it sends, and
/// one that marks every reply "more" would otherwise be read until the deadline. Messages
/// themselves are at most 64 KiB (a 16-bit length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Bytes of all messages read for one [`Client::multipart_pipelined`] call
    /// (`openflow_reply_bytes`, `--ovs.max-reply-bytes`).
    pub max_bytes: usize,
    /// Messages read for one call, replies and unsolicited ones alike
    /// (`openflow_reply_messages`).
    pub max_messages: usize,
}

/// `--ovs.max-reply-bytes` default: about 1.5 million flows with short matches.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 256 << 20;
/// A 1-million-flow table is about 2,000 replies; empty "more" replies cannot spin for long.
pub const MAX_REPLY_MESSAGES: usize = 100_000;

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_bytes: DEFAULT_MAX_REPLY_BYTES,
            max_messages: MAX_REPLY_MESSAGES,
        }
    }
}

impl Client {
    /// Connects and negotiates OpenFlow 1.3; everything must finish before `deadline`.
    pub async fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<Client, ClientError> {
        let connect = async {
            match endpoint {
                Endpoint::Unix(p) => UnixStream::connect(p).await.map(Stream::Unix),
                Endpoint::Tcp(a) => {
                    let s = TcpStream::connect(a).await?;
                    s.set_nodelay(true)?;
                    Ok(Stream::Tcp(s))
                }
            }
        };
        let stream = match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    endpoint: endpoint.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    endpoint: endpoint.clone(),
                    stage: "connecting",
                });
            }
        };
        let mut client = Client {
            stream,
            endpoint: endpoint.clone(),
            buf: BytesMut::with_capacity(READ_CHUNK),
            next_xid: 1,
            deadline,
            limits: ReplyLimits::default(),
        };
        client.handshake().await?;
        Ok(client)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Bounds for the replies of each following request.
    pub fn set_limits(&mut self, limits: ReplyLimits) {
        self.limits = limits;
    }

    fn xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    async fn send(&mut self, msg: &[u8], stage: &'static str) -> Result<(), ClientError> {
        match tokio::time::timeout_at(self.deadline, self.stream.write_all(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(self.io_error(stage, source)),
            Err(_) => Err(ClientError::Timeout {
                endpoint: self.endpoint.clone(),
                stage,
            }),
        }
    }

    fn io_error(&self, stage: &'static str, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => ClientError::Closed {
                endpoint: self.endpoint.clone(),
                stage,
            },
            _ => ClientError::Io {
                endpoint: self.endpoint.clone(),
                stage,
                source,
            },
        }
    }

    /// Reads until one whole message is buffered; returns its header. The message stays at
    /// the front of `self.buf` until [`Client::consume`].
    async fn read_message(&mut self, stage: &'static str) -> Result<Header, ClientError> {
        loop {
            if self.buf.len() >= HEADER_LEN {
                let mut h = [0u8; HEADER_LEN];
                h.copy_from_slice(&self.buf[..HEADER_LEN]);
                let header = Header::parse(&h);
                let len = header.length as usize;
                if len < HEADER_LEN {
                    return Err(ClientError::Decode {
                        endpoint: self.endpoint.clone(),
                        what: "message header",
                        source: DecodeError::BadLength {
                            what: "message",
                            offset: 0,
                            len,
                            reason: "shorter than the OpenFlow header",
                        },
                    });
                }
                if self.buf.len() >= len {
                    return Ok(header);
                }
                self.buf
                    .reserve(len.max(READ_CHUNK) - self.buf.len().min(len));
            } else {
                self.buf.reserve(READ_CHUNK);
            }
            match tokio::time::timeout_at(self.deadline, self.stream.read_buf(&mut self.buf)).await
            {
                Ok(Ok(0)) => {
                    return Err(ClientError::Closed {
                        endpoint: self.endpoint.clone(),
                        stage,
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err(source)) => return Err(self.io_error(stage, source)),
                Err(_) => {
                    return Err(ClientError::Timeout {
                        endpoint: self.endpoint.clone(),
                        stage,
                    });
                }
            }
        }
    }

    fn consume(&mut self, header: &Header) {
        self.buf.advance(header.length as usize);
    }

    async fn handshake(&mut self) -> Result<(), ClientError> {
        let xid = self.xid();
        self.send(&message::hello(xid), "sending HELLO").await?;
        let header = self.read_message("waiting for HELLO").await?;
        let result = if header.msg_type == msg_type::HELLO {
            match message::parse_hello(&self.buf[..header.length as usize]) {
                Ok(peer) if peer.supports_13() => Ok(()),
                Ok(peer) => Err(ClientError::Version {
                    endpoint: self.endpoint.clone(),
                    offered: peer.describe(),
                }),
                Err(source) => Err(ClientError::Decode {
                    endpoint: self.endpoint.clone(),
                    what: "HELLO",
                    source,
                }),
            }
        } else if header.msg_type == msg_type::ERROR {
            Err(ClientError::Version {
                endpoint: self.endpoint.clone(),
                offered: format!("version {}", message::version_name(header.version)),
            })
        } else {
            Err(ClientError::Unexpected {
                endpoint: self.endpoint.clone(),
                version: header.version,
                msg_type: header.msg_type,
                stage: "waiting for HELLO",
            })
        };
        self.consume(&header);
        result
    }

    /// Sends a multipart request of `kind` and hands each reply body to `on_body` until the
    /// last reply. A decode error from `on_body` ends the request with that error.
    pub async fn multipart(
        &mut self,
        kind: MultipartType,
        on_body: &mut (dyn FnMut(&[u8]) -> Result<(), DecodeError> + Send),
    ) -> Result<(), ClientError> {
        self.multipart_pipelined(&[kind], &mut |_, body| on_body(body))
            .await
    }

    /// Sends all the requests at once (the switch answers them in order, without a round
    /// trip between them) and hands each reply body to `on_reply` with its request's kind,
    /// until every request has had its last reply.
    pub async fn multipart_pipelined(
        &mut self,
        kinds: &[MultipartType],
        on_reply: &mut ReplyHandler<'_>,
    ) -> Result<(), ClientError> {
        let mut batch = Vec::with_capacity(64 * kinds.len());
        let mut xids = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            let xid = self.xid();
            xids.push(xid);
            batch.extend_from_slice(&message::multipart_request(xid, kind));
        }
        let mut pending = kinds.len();
        let mut done = vec![false; kinds.len()];
        let stage_of = |i: Option<usize>| i.map_or("reading replies", |i| kinds[i].name());
        self.send(&batch, stage_of(kinds.first().map(|_| 0)))
            .await?;
        let (mut bytes, mut messages) = (0usize, 0usize);
        while pending > 0 {
            let waiting = done.iter().position(|d| !d);
            let header = self.read_message(stage_of(waiting)).await?;
            let len = header.length as usize;
            bytes += len;
            messages += 1;
            if bytes > self.limits.max_bytes {
                crate::limits::exceeded("openflow_reply_bytes");
                return Err(ClientError::TooLarge {
                    endpoint: self.endpoint.clone(),
                    what: "bytes",
                    limit: self.limits.max_bytes,
                    setting: "--ovs.max-reply-bytes",
                });
            }
            if messages > self.limits.max_messages {
                crate::limits::exceeded("openflow_reply_messages");
                return Err(ClientError::TooLarge {
                    endpoint: self.endpoint.clone(),
                    what: "messages",
                    limit: self.limits.max_messages,
                    setting: "a constant, MAX_REPLY_MESSAGES",
                });
            }
            let Some(i) = xids.iter().position(|&x| x == header.xid) else {
                // An ECHO_REQUEST from the switch, or something unsolicited: answer or skip.
                if header.msg_type == msg_type::ECHO_REQUEST {
                    let reply = message::echo_reply(&self.buf[..len]);
                    self.consume(&header);
                    self.send(&reply, "answering ECHO").await?;
                } else {
                    self.consume(&header);
                }
                continue;
            };
            let kind = kinds[i];
            let stage = kind.name();
            match header.msg_type {
                msg_type::MULTIPART_REPLY if !done[i] => {
                    let more = {
                        let msg = &self.buf[..len];
                        let (reply_kind, flags, body) = message::parse_multipart_reply(msg)
                            .map_err(|source| ClientError::Decode {
                                endpoint: self.endpoint.clone(),
                                what: stage,
                                source,
                            })?;
                        if reply_kind != kind as u16 {
                            return Err(ClientError::Decode {
                                endpoint: self.endpoint.clone(),
                                what: stage,
                                source: DecodeError::Invalid {
                                    what: "multipart type",
                                    offset: HEADER_LEN,
                                    detail: format!("expected {}, got {reply_kind}", kind as u16),
                                },
                            });
                        }
                        on_reply(kind, body).map_err(|source| ClientError::Decode {
                            endpoint: self.endpoint.clone(),
                            what: stage,
                            source,
                        })?;
                        flags & message::REPLY_MORE != 0
                    };
                    self.consume(&header);
                    if !more {
                        done[i] = true;
                        pending -= 1;
                    }
                }
                msg_type::ERROR => {
                    let error = ErrorMsg::parse(&self.buf[..len]).map_err(|source| {
                        ClientError::Decode {
                            endpoint: self.endpoint.clone(),
                            what: "error message",
                            source,
                        }
                    })?;
                    self.consume(&header);
                    return Err(ClientError::Rejected {
                        endpoint: self.endpoint.clone(),
                        request: stage,
                        error,
                    });
                }
                other => {
                    self.consume(&header);
                    return Err(ClientError::Unexpected {
                        endpoint: self.endpoint.clone(),
                        version: header.version,
                        msg_type: other,
                        stage,
                    });
                }
            }
        }
        Ok(())
    }
}
