//! DNS over TCP (RFC 7766): each message preceded by its two-byte length;
//! several queries per connection, answered as they are ready (possibly
//! out of order). Connections idle for 10 s are closed, and at most 64
//! are open at once (IPv4 and IPv6 together).

use crate::Shared;
use netvm_dns::{Client, Transport};
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connection with no query for this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// Most connections at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Accepts connections for as long as the server runs.
pub(crate) async fn accept(shared: Rc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        if shared.tcp.borrow().len() >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        let next = shared.next_connection();
        let client = Client {
            addr,
            transport: Transport::Tcp(next),
        };
        tokio::task::spawn_local(serve(Rc::clone(&shared), stream, client, next));
    }
}

async fn serve(shared: Rc<Shared>, stream: TcpStream, client: Client, id: u64) {
    let (mut reader, mut writer) = stream.into_split();
    let (sender, mut replies) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    shared.tcp.borrow_mut().insert(id, sender);
    let write = tokio::task::spawn_local(async move {
        while let Some(reply) = replies.recv().await {
            let Ok(length) = u16::try_from(reply.len()) else {
                continue;
            };
            let mut framed = length.to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if writer.write_all(&framed).await.is_err() {
                break;
            }
        }
    });
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(IDLE, reader.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        match tokio::time::timeout(IDLE, reader.read_exact(&mut message)).await {
            Ok(Ok(_)) => shared.query(client, &message),
            _ => break,
        }
    }
    // Dropping the sender ends the writer once queued replies are out.
    shared.tcp.borrow_mut().remove(&id);
    let _ = write.await;
}
