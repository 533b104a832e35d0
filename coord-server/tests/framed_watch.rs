//! The watch stream over coord's framing on a real member's client port:
//! the member answers the magic, then sends the same responses a gRPC
//! `Watch` stream on the same port gets; an unknown magic ends the
//! connection and harms nothing else.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use coord_proto::frame::{encode_frame, read_frame};
use coord_proto::v1::coord_client::CoordClient;
use coord_proto::v1::{
    CreateRequest, EventType, SetRequest, WatchCancel, WatchCreate, WatchKind, WatchRequest,
    WatchResponse, watch_request,
};
use coord_proto::{WATCH_MAGIC, WATCH_MAX_FRAME_BYTES};
use coord_testkit::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");
const WAIT: Duration = Duration::from_secs(10);

/// Opens a framed watch stream and checks the member's answer.
async fn open(addr: &str) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (reader, mut writer) = stream.into_split();
    writer.write_all(WATCH_MAGIC).await.expect("magic");
    let mut reader = BufReader::new(reader);
    let mut answer = [0u8; 8];
    tokio::time::timeout(WAIT, reader.read_exact(&mut answer))
        .await
        .expect("the member answers")
        .expect("read");
    assert_eq!(&answer, WATCH_MAGIC, "the member answers with the magic");
    (reader, writer)
}

async fn send(writer: &mut OwnedWriteHalf, request: watch_request::Request) {
    let mut out = BytesMut::new();
    encode_frame(
        &WatchRequest {
            request: Some(request),
        },
        &mut out,
    );
    writer.write_all(&out).await.expect("write");
}

fn recursive(watch_id: u64, path: &str) -> watch_request::Request {
    watch_request::Request::Create(WatchCreate {
        watch_id,
        path: path.into(),
        kind: WatchKind::PersistentRecursive as i32,
        after_zxid: None,
    })
}

/// What a response says, without the header (its zxid is the member's
/// applied index at sending, which differs between two streams).
fn content(mut response: WatchResponse) -> WatchResponse {
    assert!(response.header.is_some(), "every response has a header");
    response.header = None;
    response
}

/// Collects responses from `next` (progress aside) until `done` says the
/// list is complete.
async fn until(
    mut next: impl AsyncFnMut() -> WatchResponse,
    done: impl Fn(&[WatchResponse]) -> bool,
) -> Vec<WatchResponse> {
    let mut got = Vec::new();
    while !done(&got) {
        let response = tokio::time::timeout(WAIT, next())
            .await
            .expect("a response in time");
        if response.progress_zxid == 0 {
            got.push(content(response));
        }
    }
    got
}

/// Reads framed responses until `done` says the list is complete.
async fn framed_until(
    reader: &mut BufReader<OwnedReadHalf>,
    done: impl Fn(&[WatchResponse]) -> bool,
) -> Vec<WatchResponse> {
    let next = async || {
        read_frame(reader, WATCH_MAX_FRAME_BYTES)
            .await
            .expect("decodes")
            .expect("stream open")
    };
    until(next, done).await
}

/// Reads gRPC responses until `done` says the list is complete.
async fn grpc_until(
    responses: &mut Streaming<WatchResponse>,
    done: impl Fn(&[WatchResponse]) -> bool,
) -> Vec<WatchResponse> {
    let next = async || {
        responses
            .message()
            .await
            .expect("no error")
            .expect("stream open")
    };
    until(next, done).await
}

/// Events of the responses, in order.
fn events(responses: &[WatchResponse]) -> Vec<(EventType, String, u64)> {
    responses
        .iter()
        .flat_map(|r| &r.events)
        .map(|e| (e.r#type(), e.path.clone(), e.zxid))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_framed_stream_gets_what_a_grpc_stream_gets() {
    let cluster = Cluster::builder(1).binary(BIN).start().await;
    let addr = &cluster.endpoints()[0];
    let mut grpc = CoordClient::connect(format!("http://{addr}"))
        .await
        .expect("grpc on the same port");
    let (mut reader, mut writer) = open(addr).await;
    send(&mut writer, recursive(1, "/w")).await;
    let (requests, queued) = mpsc::unbounded_channel();
    requests
        .send(WatchRequest {
            request: Some(recursive(1, "/w")),
        })
        .expect("queued");
    let mut over_grpc = grpc
        .watch(UnboundedReceiverStream::new(queued))
        .await
        .expect("grpc watch")
        .into_inner();
    let created = |got: &[WatchResponse]| !got.is_empty();
    let framed_created = framed_until(&mut reader, created).await;
    let grpc_created = grpc_until(&mut over_grpc, created).await;
    assert!(framed_created[0].created, "{framed_created:?}");
    assert_eq!(framed_created, grpc_created);

    grpc.create(CreateRequest {
        path: "/w".into(),
        ..CreateRequest::default()
    })
    .await
    .expect("create /w");
    grpc.create(CreateRequest {
        path: "/w/a".into(),
        data: Bytes::from_static(b"1"),
        ..CreateRequest::default()
    })
    .await
    .expect("create /w/a");
    grpc.set(SetRequest {
        path: "/w/a".into(),
        data: Bytes::from_static(b"2"),
        version: -1,
        ..SetRequest::default()
    })
    .await
    .expect("set /w/a");
    let three = |got: &[WatchResponse]| events(got).len() >= 3;
    let framed = framed_until(&mut reader, three).await;
    let over_grpc_events = grpc_until(&mut over_grpc, three).await;
    assert_eq!(events(&framed), events(&over_grpc_events));
    let kinds: Vec<(EventType, String)> = events(&framed)
        .into_iter()
        .map(|(kind, path, _)| (kind, path))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventType::NodeCreated, "/w".to_owned()),
            (EventType::NodeCreated, "/w/a".to_owned()),
            (EventType::NodeDataChanged, "/w/a".to_owned()),
        ]
    );

    send(
        &mut writer,
        watch_request::Request::Cancel(WatchCancel { watch_id: 1 }),
    )
    .await;
    let canceled = framed_until(&mut reader, |got| !got.is_empty()).await;
    assert!(canceled[0].canceled, "{canceled:?}");
    assert_eq!(canceled[0].watch_id, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_magic_ends_only_its_connection() {
    let cluster = Cluster::builder(1).binary(BIN).start().await;
    let addr = &cluster.endpoints()[0];
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"\0coordX9").await.expect("write");
    let mut rest = Vec::new();
    let _closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the member closes the connection");
    assert!(rest.is_empty(), "nothing answered to an unknown magic");
    let (mut reader, mut writer) = open(addr).await;
    send(&mut writer, recursive(7, "/")).await;
    let created = framed_until(&mut reader, |got| !got.is_empty()).await;
    assert!(created[0].created, "the member still serves framed streams");
}
