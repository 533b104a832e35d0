//! The unary-call protocol on a real member's client port: pipelined calls
//! answered by id, the same answers and typed errors as gRPC on the same
//! port, and bad input refused without harm to the connection or the member.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use coord_proto::frame::{encode_frame, read_frame};
use coord_proto::v1::coord_client::CoordClient;
use coord_proto::v1::{
    CreateRequest, CreateResponse, ErrorCode, ErrorDetail, GetRequest, GetResponse, StatusRequest,
    UnaryCall, UnaryMethod, UnaryReply, WriteMeta,
};
use coord_proto::{UNARY_MAGIC, UNARY_MAX_FRAME_BYTES, Unary};
use coord_testkit::Cluster;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

async fn connect(addr: &str) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (reader, mut writer) = stream.into_split();
    writer.write_all(UNARY_MAGIC).await.expect("magic");
    (BufReader::new(reader), writer)
}

fn call<R: Unary>(id: u64, request: &R) -> UnaryCall {
    UnaryCall {
        id,
        method: R::METHOD as i32,
        body: request.encode_to_vec().into(),
    }
}

/// Writes every call in one write.
async fn send(writer: &mut OwnedWriteHalf, calls: &[UnaryCall]) {
    let mut out = BytesMut::new();
    for c in calls {
        encode_frame(c, &mut out);
    }
    writer.write_all(&out).await.expect("write");
}

async fn replies(reader: &mut BufReader<OwnedReadHalf>, n: usize) -> HashMap<u64, UnaryReply> {
    let mut got = HashMap::new();
    while got.len() < n {
        let reply: UnaryReply = read_frame(reader, 1 << 20)
            .await
            .expect("reply")
            .expect("connection open");
        assert!(got.insert(reply.id, reply).is_none(), "one reply per call");
    }
    got
}

fn create(path: &str, seq: u64) -> CreateRequest {
    CreateRequest {
        meta: Some(WriteMeta {
            client_id: 77,
            seq,
            first_incomplete_seq: 1,
        }),
        path: path.into(),
        data: Bytes::from(format!("data of {path}")),
        ..CreateRequest::default()
    }
}

fn get(path: &str) -> GetRequest {
    GetRequest {
        path: path.into(),
        serializable: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_calls_are_each_answered_by_id() {
    let cluster = Cluster::builder(1).binary(BIN).start().await;
    let addr = &cluster.endpoints()[0];
    let (mut reader, mut writer) = connect(addr).await;
    send(&mut writer, &[call(1, &create("/p", 1))]).await;
    assert_eq!(replies(&mut reader, 1).await[&1].code, 0);
    let creates: Vec<UnaryCall> = (0..200)
        .map(|i| call(100 + i, &create(&format!("/p/n{i}"), 2 + i)))
        .collect();
    send(&mut writer, &creates).await;
    let created = replies(&mut reader, creates.len()).await;
    for i in 0..200 {
        let reply = &created[&(100 + i)];
        assert_eq!(reply.code, 0, "{}", reply.message);
        let response = CreateResponse::decode(reply.body.clone()).expect("decodes");
        assert_eq!(response.path, format!("/p/n{i}"));
    }
    let gets: Vec<UnaryCall> = (0..200)
        .map(|i| call(1000 + i, &get(&format!("/p/n{i}"))))
        .collect();
    send(&mut writer, &gets).await;
    let read = replies(&mut reader, gets.len()).await;
    for i in 0..200 {
        let response = GetResponse::decode(read[&(1000 + i)].body.clone()).expect("decodes");
        assert_eq!(response.data, Bytes::from(format!("data of /p/n{i}")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_carry_the_same_status_as_over_grpc() {
    let cluster = Cluster::builder(1).binary(BIN).start().await;
    let addr = &cluster.endpoints()[0];
    let (mut reader, mut writer) = connect(addr).await;
    let mut grpc = CoordClient::connect(format!("http://{addr}"))
        .await
        .expect("grpc on the same port");
    let mut bad_path = create("no-slash", 1);
    bad_path.meta = None;
    send(
        &mut writer,
        &[call(1, &get("/missing")), call(2, &bad_path)],
    )
    .await;
    let got = replies(&mut reader, 2).await;
    let over_grpc = [
        grpc.get(get("/missing")).await.expect_err("no node"),
        grpc.create(bad_path).await.expect_err("bad path"),
    ];
    for (id, status) in [1, 2].into_iter().zip(over_grpc) {
        let reply = &got[&id];
        assert_ne!(status.code(), Code::Ok);
        assert_eq!(reply.code, status.code() as i32);
        assert_eq!(reply.message, status.message());
        assert_eq!(
            &reply.details[..],
            status.details(),
            "the same typed detail"
        );
        assert!(!reply.details.is_empty());
    }
    assert_eq!(got[&1].code, Code::NotFound as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_calls_get_typed_answers_and_only_a_broken_frame_ends_the_connection() {
    // Small limits: a request can be over --max-request-bytes while its data
    // is within --max-data-bytes.
    let cluster = Cluster::builder(1)
        .binary(BIN)
        .args(["--max-data-bytes", "1000", "--max-request-bytes", "2000"])
        .start()
        .await;
    let addr = &cluster.endpoints()[0];
    let (mut reader, mut writer) = connect(addr).await;
    let unknown = UnaryCall {
        id: 1,
        method: 999,
        body: Bytes::new(),
    };
    let undecodable = UnaryCall {
        id: 2,
        method: UnaryMethod::Get as i32,
        body: Bytes::from_static(&[0xff, 0xff, 0xff]),
    };
    send(
        &mut writer,
        &[unknown, undecodable, call(3, &StatusRequest {})],
    )
    .await;
    let got = replies(&mut reader, 3).await;
    assert_eq!(got[&1].code, Code::Unimplemented as i32);
    assert_eq!(got[&2].code, Code::InvalidArgument as i32);
    assert_eq!(got[&3].code, 0, "the connection still serves");
    // Over --max-request-bytes, data within --max-data-bytes: TOO_LARGE.
    let mut huge = create(&format!("/{}", "p".repeat(1500)), 1);
    huge.data = Bytes::from(vec![b'x'; 1000]);
    send(&mut writer, &[call(5, &huge)]).await;
    let reply = &replies(&mut reader, 1).await[&5];
    assert_eq!(reply.code, Code::ResourceExhausted as i32);
    let detail = ErrorDetail::decode(reply.details.clone()).expect("detail");
    assert_eq!(detail.code(), ErrorCode::TooLarge);
    // Over the protocol's own frame limit: the connection ends.
    writer
        .write_all(&((UNARY_MAX_FRAME_BYTES + 1) as u32).to_be_bytes())
        .await
        .expect("write");
    let mut rest = Vec::new();
    // Closed (or reset) without a reply.
    let _closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_to_end(&mut rest),
    )
    .await
    .expect("the member closes the connection");
    assert!(rest.is_empty(), "no reply to an oversized frame");
    let (mut reader, mut writer) = connect(addr).await;
    send(&mut writer, &[call(4, &StatusRequest {})]).await;
    assert_eq!(
        replies(&mut reader, 1).await[&4].code,
        0,
        "the member serves on"
    );
}
