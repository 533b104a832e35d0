//! Walking a subtree: listing it (for `tree`) and deleting it bottom-up (for
//! `rm -r`). The walk takes the listing function as a parameter so tests can
//! run it on an in-memory tree.

use std::collections::BTreeMap;

use coord_client::{Client, Error, ErrorInfo};

/// A subtree as seen by one walk: the sorted child names of each listed node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Path of the subtree's root.
    pub root: String,
    /// Child names by parent path. A node that vanished during the walk has no
    /// entry and is shown as a leaf.
    pub children: BTreeMap<String, Vec<String>>,
}

impl Listing {
    /// The child names of `path` (none if it was not listed).
    pub fn children_of(&self, path: &str) -> &[String] {
        self.children.get(path).map_or(&[], Vec::as_slice)
    }

    /// Every path with its depth below the root, parents before children,
    /// siblings in name order.
    pub fn preorder(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut stack = vec![(0, self.root.clone())];
        while let Some((depth, path)) = stack.pop() {
            for name in self.children_of(&path).iter().rev() {
                stack.push((depth + 1, child_path(&path, name)));
            }
            out.push((depth, path));
        }
        out
    }
}

/// The path of child `name` of `parent`.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Lists the subtree under `root` with `list` (child names of a path). A node
/// below the root that vanishes during the walk is tolerated; a missing root
/// is an error.
pub async fn fetch<F>(root: &str, mut list: F) -> Result<Listing, Error>
where
    F: AsyncFnMut(&str) -> Result<Vec<String>, Error>,
{
    let mut listing = Listing {
        root: root.to_owned(),
        children: BTreeMap::new(),
    };
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        match list(&path).await {
            Ok(names) => {
                pending.extend(names.iter().map(|n| child_path(&path, n)));
                listing.children.insert(path, names);
            }
            Err(Error::NoNode(_)) if path != root => {}
            Err(err) => return Err(err),
        }
    }
    Ok(listing)
}

/// Rounds of list-then-delete before giving up on a subtree that keeps growing.
const DELETE_ROUNDS: usize = 5;

/// Deletes `root` and everything below it, children first. Nodes deleted by
/// someone else meanwhile are tolerated; a child created meanwhile makes its
/// parent's delete fail with `NotEmpty`, and the walk is repeated. `version`
/// applies to `root` only and is checked before anything is deleted. Returns
/// the number of nodes this call deleted.
pub async fn delete_recursive(client: &Client, root: &str, version: i32) -> Result<usize, Error> {
    if version != -1 {
        check_version(client, root, version).await?;
    }
    let mut deleted = 0;
    for round in 1..=DELETE_ROUNDS {
        let listing = fetch(root, async |path: &str| Ok(client.children(path).await?.0)).await?;
        let mut order = listing.preorder();
        order.reverse();
        match delete_in_order(client, root, version, &order, &mut deleted).await {
            Ok(()) => return Ok(deleted),
            Err(Error::NotEmpty(_)) if round < DELETE_ROUNDS => {
                tracing::debug!(root, round, "subtree grew during rm -r; walking it again");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(deleted)
}

async fn delete_in_order(
    client: &Client,
    root: &str,
    version: i32,
    order: &[(usize, String)],
    deleted: &mut usize,
) -> Result<(), Error> {
    for (_, path) in order {
        let expected = if path == root { version } else { -1 };
        match client.delete(path, expected).await {
            Ok(()) => *deleted += 1,
            Err(Error::NoNode(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

async fn check_version(client: &Client, root: &str, version: i32) -> Result<(), Error> {
    let info = |message: String| ErrorInfo {
        message,
        path: Some(root.to_owned()),
        ..ErrorInfo::default()
    };
    let stat = client
        .exists(root)
        .await?
        .ok_or_else(|| Error::NoNode(info(format!("no node: {root}"))))?;
    if stat.version != version {
        let message = format!(
            "bad version for {root}: expected {version}, actual {}",
            stat.version
        );
        return Err(Error::BadVersion(info(message)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory tree: parent path -> child names.
    pub(crate) fn fake_tree(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(p, c)| ((*p).to_owned(), c.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    fn no_node(path: &str) -> Error {
        Error::NoNode(ErrorInfo::from_message(format!("no node: {path}")))
    }

    #[tokio::test]
    async fn fetch_walks_the_whole_subtree_and_tolerates_vanished_nodes() {
        // "/a/gone" is named by its parent but no longer exists.
        let tree = fake_tree(&[
            ("/", &["a", "b"]),
            ("/a", &["gone", "x"]),
            ("/a/x", &[]),
            ("/b", &[]),
        ]);
        let listing = fetch("/", async |p: &str| {
            tree.get(p).cloned().ok_or_else(|| no_node(p))
        })
        .await
        .expect("walk");
        let order: Vec<String> = listing
            .preorder()
            .into_iter()
            .map(|(d, p)| format!("{d}{p}"))
            .collect();
        assert_eq!(order, ["0/", "1/a", "2/a/gone", "2/a/x", "1/b"]);
    }

    #[tokio::test]
    async fn a_missing_root_is_an_error() {
        let tree = fake_tree(&[("/", &[])]);
        let err = fetch("/nope", async |p: &str| {
            tree.get(p).cloned().ok_or_else(|| no_node(p))
        })
        .await
        .expect_err("missing root");
        assert_eq!(err.name(), "NoNode");
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }
}
