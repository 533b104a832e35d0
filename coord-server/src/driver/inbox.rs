//! Where the Raft thread waits: its input channel and the peers' inbound Raft
//! connections in one epoll set (mio). A peer's frame wakes the Raft thread
//! itself; read by a tokio worker it woke that worker first, and the worker
//! woke the Raft thread, two wake-ups per frame where one does
//! (docs/benchmarks.md, "the driver reads its peers' sockets itself").
//!
//! Senders of inputs ring the waker only when the Raft thread is parked, so
//! a busy Raft thread costs them no system call. The Raft thread also writes
//! the connections' keep-alive bytes (transport/wire.rs): a copy of the
//! socket in the tokio runtime, to write them from a task, would wake a
//! tokio worker for every frame that arrives.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use raft::eraftpb::Message;
use tracing::debug;

use super::handle::Input;
use crate::transport::{KEEPALIVE, KEEPALIVE_EVERY, take_frames};

/// The waker's token; connections count up from the next one.
const WAKER: Token = Token(0);
/// Inputs taken from the channel per wait, so ticks keep their pace.
const MAX_INPUTS: usize = 4096;
/// Bytes read from a connection at a time.
const READ_BYTES: usize = 256 << 10;

/// What a wait brought.
#[derive(Debug)]
pub enum Received {
    /// An input from a request handler or a service.
    Input(Input),
    /// A message from a peer's Raft connection.
    Peer(Message),
}

/// The sending side, held by every [`super::DriverHandle`].
#[derive(Debug, Clone)]
pub struct Mailbox {
    inputs: Sender<Input>,
    connections: Sender<std::net::TcpStream>,
    doorbell: Arc<Doorbell>,
}

/// Wakes the Raft thread when it is parked.
#[derive(Debug)]
struct Doorbell {
    parked: AtomicBool,
    waker: Waker,
}

impl Doorbell {
    fn ring(&self) {
        // Pairs with the fence in `Inbox::park`: either the Raft thread sees
        // what was just sent, or this sees it parked.
        fence(Ordering::SeqCst);
        if self.parked.swap(false, Ordering::SeqCst)
            && let Err(err) = self.waker.wake()
        {
            debug!(%err, "raft thread not woken");
        }
    }
}

/// Why an input could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("the driver has stopped")]
pub struct Stopped;

impl Mailbox {
    /// Sends `input` to the Raft thread.
    pub fn send(&self, input: Input) -> Result<(), Stopped> {
        self.inputs.send(input).map_err(|_| Stopped)?;
        self.doorbell.ring();
        Ok(())
    }

    /// Hands an inbound Raft connection, past its magic, to the Raft thread,
    /// which reads its frames from then on. The stream must be non-blocking.
    pub fn add_connection(&self, stream: std::net::TcpStream) -> Result<(), Stopped> {
        self.connections.send(stream).map_err(|_| Stopped)?;
        self.doorbell.ring();
        Ok(())
    }
}

/// One inbound Raft connection.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// Bytes read but not yet a whole frame.
    buffered: BytesMut,
}

/// The receiving side, owned by the Raft thread.
#[derive(Debug)]
pub struct Inbox {
    inputs: Receiver<Input>,
    connections: Receiver<std::net::TcpStream>,
    doorbell: Arc<Doorbell>,
    poll: Poll,
    events: Events,
    /// The connections an event named, read after the events; reused.
    ready: Vec<Token>,
    open: HashMap<Token, Connection>,
    next_token: usize,
    scratch: Vec<u8>,
    next_keepalive: Instant,
}

impl Inbox {
    /// An inbox and the mailbox that sends to it.
    pub fn new() -> io::Result<(Self, Mailbox)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let doorbell = Arc::new(Doorbell {
            parked: AtomicBool::new(false),
            waker,
        });
        let (inputs, input_rx) = mpsc::channel();
        let (connections, connection_rx) = mpsc::channel();
        let inbox = Self {
            inputs: input_rx,
            connections: connection_rx,
            doorbell: Arc::clone(&doorbell),
            poll,
            events: Events::with_capacity(256),
            ready: Vec::new(),
            open: HashMap::new(),
            next_token: WAKER.0 + 1,
            scratch: vec![0; READ_BYTES],
            next_keepalive: Instant::now() + KEEPALIVE_EVERY,
        };
        let mailbox = Mailbox {
            inputs,
            connections,
            doorbell,
        };
        Ok((inbox, mailbox))
    }

    /// Appends to `out` what arrived, waiting up to `timeout` when nothing
    /// had. Returns false once every mailbox is gone.
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Received>) -> io::Result<bool> {
        let open = self.take_inputs(out);
        let timeout = if out.is_empty() && open {
            self.park(timeout, out)
        } else {
            Duration::ZERO
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
        self.doorbell.parked.store(false, Ordering::SeqCst);
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(
            self.events
                .iter()
                .map(|event| event.token())
                .filter(|token| *token != WAKER),
        );
        for token in ready.drain(..) {
            self.read(token, out);
        }
        self.ready = ready;
        self.keep_alive();
        Ok(self.take_inputs(out) && open)
    }

    /// Writes a keep-alive byte to every connection when one is due. A
    /// sender that takes no bytes has its own stall bound; a connection
    /// whose write fails is closed.
    fn keep_alive(&mut self) {
        let now = Instant::now();
        if now < self.next_keepalive {
            return;
        }
        self.next_keepalive = now + KEEPALIVE_EVERY;
        let failed: Vec<Token> = self
            .open
            .iter_mut()
            .filter_map(
                |(token, connection)| match connection.stream.write(&[KEEPALIVE]) {
                    Ok(_) => None,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
                    Err(_) => Some(*token),
                },
            )
            .collect();
        for token in failed {
            self.close(token, "keep-alive not written");
        }
    }

    /// Marks the thread parked, unless something arrived meanwhile; returns
    /// how long the poll may wait.
    fn park(&mut self, timeout: Duration, out: &mut Vec<Received>) -> Duration {
        self.doorbell.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.take_inputs(out);
        if out.is_empty() {
            timeout
        } else {
            Duration::ZERO
        }
    }

    /// Takes queued inputs and registers new connections; false once every
    /// mailbox is gone.
    fn take_inputs(&mut self, out: &mut Vec<Received>) -> bool {
        while let Ok(stream) = self.connections.try_recv() {
            self.register(stream);
        }
        for _ in 0..MAX_INPUTS {
            match self.inputs.try_recv() {
                Ok(input) => out.push(Received::Input(input)),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn register(&mut self, stream: std::net::TcpStream) {
        let mut stream = TcpStream::from_std(stream);
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(err) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            debug!(%err, "raft connection not registered; closed");
            return;
        }
        let connection = Connection {
            stream,
            buffered: BytesMut::new(),
        };
        // Bytes that came before the registration raise an event too: epoll
        // reports a registered socket's readiness as it is.
        self.open.insert(token, connection);
    }

    /// Reads a ready connection until the socket has nothing more, decoding
    /// whole frames; closes it at its end or at a bad frame.
    fn read(&mut self, token: Token, out: &mut Vec<Received>) {
        let Some(connection) = self.open.get_mut(&token) else {
            return;
        };
        let mut msgs = Vec::new();
        let end = loop {
            match connection.stream.read(&mut self.scratch) {
                Ok(0) => break Some("closed by the peer".to_string()),
                Ok(n) => {
                    connection.buffered.extend_from_slice(&self.scratch[..n]);
                    if let Err(err) = take_frames(&mut connection.buffered, &mut msgs) {
                        break Some(err.to_string());
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break None,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Some(err.to_string()),
            }
        };
        out.extend(msgs.into_iter().map(Received::Peer));
        if let Some(why) = end {
            self.close(token, &why);
        }
    }

    fn close(&mut self, token: Token, why: &str) {
        if let Some(mut connection) = self.open.remove(&token) {
            debug!(why, "raft connection closed");
            let _ = self.poll.registry().deregister(&mut connection.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::frame::encode_frame;
    use coord_proto::peer::RaftBatch;

    /// A connected loopback pair: the peer's end, and this member's end,
    /// non-blocking as the receiver hands it over.
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (member, _) = listener.accept().expect("accept");
        member.set_nonblocking(true).expect("non-blocking");
        (peer, member)
    }

    fn frame(msg: &Message) -> BytesMut {
        let batch = RaftBatch {
            from: msg.from,
            msgs: vec![
                protobuf::Message::write_to_bytes(msg)
                    .expect("encodes")
                    .into(),
            ],
        };
        let mut frame = BytesMut::new();
        encode_frame(&batch, &mut frame);
        frame
    }

    #[test]
    fn a_parked_inbox_wakes_for_an_input_and_ends_with_its_mailboxes() {
        let (mut inbox, mailbox) = Inbox::new().expect("inbox");
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            mailbox.send(Input::Shutdown).expect("sent");
        });
        let mut out = Vec::new();
        let started = Instant::now();
        while out.is_empty() && started.elapsed() < Duration::from_secs(20) {
            inbox
                .wait(Duration::from_secs(30), &mut out)
                .expect("waits");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the input did not wake the parked inbox"
        );
        assert!(matches!(out.as_slice(), [Received::Input(Input::Shutdown)]));
        sender.join().expect("sender");
        out.clear();
        assert!(
            !inbox
                .wait(Duration::from_secs(30), &mut out)
                .expect("waits"),
            "every mailbox is gone"
        );
    }

    #[test]
    fn frames_are_read_as_they_complete_and_a_bad_frame_closes_the_connection() {
        let (mut inbox, mailbox) = Inbox::new().expect("inbox");
        let (mut peer, member) = pair();
        mailbox.add_connection(member).expect("added");
        let msg = Message {
            from: 2,
            to: 1,
            index: 42,
            ..Message::default()
        };
        let frame = frame(&msg);
        let (head, tail) = frame.split_at(5);
        peer.write_all(head).expect("written");
        let mut out = Vec::new();
        inbox
            .wait(Duration::from_millis(200), &mut out)
            .expect("waits");
        assert!(out.is_empty(), "half a frame is no message");
        peer.write_all(tail).expect("written");
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.is_empty() && Instant::now() < deadline {
            inbox
                .wait(Duration::from_millis(100), &mut out)
                .expect("waits");
        }
        assert!(matches!(out.as_slice(), [Received::Peer(got)] if *got == msg));
        peer.write_all(&u32::MAX.to_be_bytes()).expect("written");
        peer.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut heard = [0u8; 64];
        let closed = loop {
            if Instant::now() > deadline {
                break false;
            }
            inbox
                .wait(Duration::from_millis(50), &mut out)
                .expect("waits");
            match peer.read(&mut heard) {
                Ok(0) => break true,
                // Keep-alive bytes, or nothing yet.
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break true,
            }
        };
        assert!(closed, "a frame over the limit left the connection open");
    }
}
