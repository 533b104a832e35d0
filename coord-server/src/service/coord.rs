//! Routes the `coord.v1.Coord` gRPC trait to the handlers in `client.rs`,
//! `lease.rs` and `watch.rs`.

use coord_proto::v1::coord_server::Coord;
use coord_proto::v1::*;
use tonic::{Request, Response, Status, Streaming};

use super::client::{CoordService, Reply};
use super::lease::KeepAliveStream;
use super::watch::WatchStream;

#[tonic::async_trait]
impl Coord for CoordService {
    async fn create(&self, request: Request<CreateRequest>) -> Reply<CreateResponse> {
        CoordService::create(self, request).await
    }

    async fn get(&self, request: Request<GetRequest>) -> Reply<GetResponse> {
        CoordService::get(self, request).await
    }

    async fn set(&self, request: Request<SetRequest>) -> Reply<SetResponse> {
        CoordService::set(self, request).await
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Reply<DeleteResponse> {
        CoordService::delete(self, request).await
    }

    async fn exists(&self, request: Request<ExistsRequest>) -> Reply<ExistsResponse> {
        CoordService::exists(self, request).await
    }

    async fn children(&self, request: Request<ChildrenRequest>) -> Reply<ChildrenResponse> {
        CoordService::children(self, request).await
    }

    async fn multi(&self, request: Request<MultiRequest>) -> Reply<MultiResponse> {
        CoordService::multi(self, request).await
    }

    async fn sync(&self, request: Request<SyncRequest>) -> Reply<SyncResponse> {
        CoordService::sync(self, request).await
    }

    async fn status(&self, request: Request<StatusRequest>) -> Reply<StatusResponse> {
        CoordService::status(self, request).await
    }

    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Reply<LeaseGrantResponse> {
        CoordService::lease_grant(self, request).await
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Reply<LeaseRevokeResponse> {
        CoordService::lease_revoke(self, request).await
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        CoordService::lease_keep_alive(self, request).await
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Reply<LeaseTimeToLiveResponse> {
        CoordService::lease_time_to_live(self, request).await
    }

    async fn lease_list(&self, request: Request<LeaseListRequest>) -> Reply<LeaseListResponse> {
        CoordService::lease_list(self, request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        CoordService::watch(self, request).await
    }
}
