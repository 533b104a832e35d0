//! The znode operations of [`Client`]. Each has a plain form returning the
//! result and a `_with_header` form also returning the answering member's
//! [`Header`] (its applied zxid, leader, term and id).

use bytes::Bytes;
use coord_proto::v1::{
    ChildrenRequest, CreateRequest, DeleteRequest, ExistsRequest, GetRequest, Header, MultiRequest,
    SetRequest, Stat, SyncRequest,
};

use crate::types::required;
use crate::{Client, CreateOptions, Created, Error, Op, OpResult, WithHeader};

impl Client {
    /// Creates a node at `path` (for a sequential mode, the path prefix).
    /// `options` is a [`CreateMode`](crate::CreateMode) for the modes that need
    /// nothing else, or a [`CreateOptions`] carrying the lease of an ephemeral
    /// node or the TTL of a TTL node.
    pub async fn create(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        options: impl Into<CreateOptions>,
    ) -> Result<Created, Error> {
        Ok(self.create_with_header(path, data, options).await?.value)
    }

    /// [`Client::create`], with the header.
    pub async fn create_with_header(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        options: impl Into<CreateOptions>,
    ) -> Result<WithHeader<Created>, Error> {
        let options = options.into();
        let ticket = self.inner.writes.begin().await;
        let request = CreateRequest {
            meta: Some(ticket.meta()),
            path: path.to_owned(),
            data: data.into(),
            mode: options.mode.into(),
            lease: options.lease_id(),
            ttl_ms: options.ttl_ms(),
        };
        let response = self.inner.call(request).await?;
        let created = Created {
            path: response.path,
            stat: required(response.stat, "CreateResponse.stat")?,
        };
        with_header(response.header, created)
    }

    /// The data and stat of the node at `path`.
    pub async fn get(&self, path: &str) -> Result<(Bytes, Stat), Error> {
        Ok(self.get_with_header(path).await?.value)
    }

    /// [`Client::get`], with the header.
    pub async fn get_with_header(&self, path: &str) -> Result<WithHeader<(Bytes, Stat)>, Error> {
        let request = GetRequest {
            path: path.to_owned(),
            serializable: self.serializable,
        };
        let response = self.inner.call(request).await?;
        let stat = required(response.stat, "GetResponse.stat")?;
        with_header(response.header, (response.data, stat))
    }

    /// Replaces the data of `path` if its version is `version` (-1 = any);
    /// returns the new stat.
    pub async fn set(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: i32,
    ) -> Result<Stat, Error> {
        Ok(self.set_with_header(path, data, version).await?.value)
    }

    /// [`Client::set`], with the header.
    pub async fn set_with_header(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: i32,
    ) -> Result<WithHeader<Stat>, Error> {
        let ticket = self.inner.writes.begin().await;
        let request = SetRequest {
            meta: Some(ticket.meta()),
            path: path.to_owned(),
            data: data.into(),
            version,
        };
        let response = self.inner.call(request).await?;
        let stat = required(response.stat, "SetResponse.stat")?;
        with_header(response.header, stat)
    }

    /// Deletes the childless node at `path` if its version is `version` (-1 = any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<(), Error> {
        self.delete_with_header(path, version).await.map(|_| ())
    }

    /// [`Client::delete`], with the header.
    pub async fn delete_with_header(
        &self,
        path: &str,
        version: i32,
    ) -> Result<WithHeader<()>, Error> {
        let ticket = self.inner.writes.begin().await;
        let request = DeleteRequest {
            meta: Some(ticket.meta()),
            path: path.to_owned(),
            version,
        };
        let response = self.inner.call(request).await?;
        with_header(response.header, ())
    }

    /// The stat of `path`, or `None` if there is no such node.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        Ok(self.exists_with_header(path).await?.value)
    }

    /// [`Client::exists`], with the header.
    pub async fn exists_with_header(&self, path: &str) -> Result<WithHeader<Option<Stat>>, Error> {
        let request = ExistsRequest {
            path: path.to_owned(),
            serializable: self.serializable,
        };
        let response = self.inner.call(request).await?;
        with_header(response.header, response.stat)
    }

    /// The sorted child names (not paths) of `path`, and its stat.
    pub async fn children(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        Ok(self.children_with_header(path).await?.value)
    }

    /// [`Client::children`], with the header.
    pub async fn children_with_header(
        &self,
        path: &str,
    ) -> Result<WithHeader<(Vec<String>, Stat)>, Error> {
        let request = ChildrenRequest {
            path: path.to_owned(),
            serializable: self.serializable,
        };
        let response = self.inner.call(request).await?;
        let stat = required(response.stat, "ChildrenResponse.stat")?;
        with_header(response.header, (response.children, stat))
    }

    /// Applies `ops` atomically: all succeed, returning one result per op, or
    /// none is applied and the error's [`op_index`](Error::op_index) names the
    /// op that failed.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, Error> {
        Ok(self.multi_with_header(ops).await?.value)
    }

    /// [`Client::multi`], with the header.
    pub async fn multi_with_header(
        &self,
        ops: Vec<Op>,
    ) -> Result<WithHeader<Vec<OpResult>>, Error> {
        let ticket = self.inner.writes.begin().await;
        let request = MultiRequest {
            meta: Some(ticket.meta()),
            ops: ops.into_iter().map(Into::into).collect(),
        };
        let response = self.inner.call(request).await?;
        let results = response
            .results
            .into_iter()
            .map(OpResult::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        with_header(response.header, results)
    }

    /// Waits until the answering member has applied everything committed before
    /// the call (ZooKeeper's `sync`), so a following serializable read on that
    /// member is at least that fresh. `path` is accepted for ZooKeeper
    /// compatibility; the whole tree is synced.
    pub async fn sync(&self, path: &str) -> Result<Header, Error> {
        let request = SyncRequest {
            path: path.to_owned(),
        };
        let response = self.inner.call(request).await?;
        required(response.header, "SyncResponse.header")
    }
}

fn with_header<T>(header: Option<Header>, value: T) -> Result<WithHeader<T>, Error> {
    Ok(WithHeader {
        header: required(header, "header")?,
        value,
    })
}
