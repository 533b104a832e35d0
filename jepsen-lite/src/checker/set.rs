//! The set checker: every acknowledged add is in the final read, nothing
//! appears that was never attempted, nothing appears twice, a definitely failed
//! add is absent, and sequential suffixes are unique and increase in zxid order.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// How an add ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddStatus {
    /// Acknowledged.
    Ok,
    /// Definitely not applied.
    Failed,
    /// Unknown: may or may not be present.
    Unknown,
}

/// One node found by the final read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The element its data names.
    pub element: u64,
    /// Its name under the set's parent.
    pub name: String,
    /// The zxid that created it.
    pub czxid: u64,
    /// Whether it was created sequentially.
    pub sequential: bool,
}

/// What the set checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SetReport {
    /// Adds attempted.
    pub attempted: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Elements present in the final read.
    pub present: usize,
    /// Acknowledged elements missing from the final read.
    pub lost: Vec<u64>,
    /// Elements present that were never attempted.
    pub unexpected: Vec<u64>,
    /// Elements present more than once (a retried add applied twice).
    pub duplicated: Vec<u64>,
    /// Elements present although their add definitely failed.
    pub failed_but_present: Vec<u64>,
    /// Sequential nodes whose suffix does not increase with their zxid.
    pub misordered: Vec<String>,
    /// Unknown adds that turned out present.
    pub unknown_present: usize,
}

impl SetReport {
    /// True when no anomaly was found.
    pub fn valid(&self) -> bool {
        self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.duplicated.is_empty()
            && self.failed_but_present.is_empty()
            && self.misordered.is_empty()
    }
}

/// The 10-digit sequential suffix of a node name, if it has one.
fn suffix(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// Checks the adds against the final read.
pub fn check(adds: &BTreeMap<u64, AddStatus>, found: &[Found]) -> SetReport {
    let mut report = SetReport {
        attempted: adds.len(),
        acknowledged: adds.values().filter(|s| **s == AddStatus::Ok).count(),
        ..SetReport::default()
    };
    let mut seen = BTreeMap::<u64, usize>::new();
    for f in found {
        *seen.entry(f.element).or_default() += 1;
    }
    report.present = seen.len();
    for (&element, &count) in &seen {
        if count > 1 {
            report.duplicated.push(element);
        }
        match adds.get(&element) {
            None => report.unexpected.push(element),
            Some(AddStatus::Failed) => report.failed_but_present.push(element),
            Some(AddStatus::Unknown) => report.unknown_present += 1,
            Some(AddStatus::Ok) => {}
        }
    }
    report.lost = adds
        .iter()
        .filter(|(e, s)| **s == AddStatus::Ok && !seen.contains_key(e))
        .map(|(e, _)| *e)
        .collect();
    let mut sequential: Vec<&Found> = found.iter().filter(|f| f.sequential).collect();
    sequential.sort_by_key(|f| f.czxid);
    let mut suffixes = BTreeSet::new();
    let mut last = None;
    for f in sequential {
        let s = suffix(&f.name);
        let increasing = s.is_some() && last.is_none_or(|l| s > Some(l));
        if !increasing || !suffixes.insert(s) {
            report.misordered.push(f.name.clone());
        }
        last = s.or(last);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(element: u64, name: &str, czxid: u64) -> Found {
        Found {
            element,
            name: name.into(),
            czxid,
            sequential: name.starts_with("s-"),
        }
    }

    #[test]
    fn a_clean_run_is_valid() {
        let adds = BTreeMap::from([
            (1, AddStatus::Ok),
            (2, AddStatus::Unknown),
            (3, AddStatus::Failed),
        ]);
        let report = check(&adds, &[found(1, "e-1", 5), found(2, "s-0000000000", 6)]);
        assert!(report.valid(), "{report:?}");
        assert_eq!(
            (
                report.attempted,
                report.acknowledged,
                report.unknown_present
            ),
            (3, 1, 1)
        );
    }

    #[test]
    fn anomalies_are_named() {
        let adds = BTreeMap::from([
            (1, AddStatus::Ok),
            (2, AddStatus::Ok),
            (3, AddStatus::Failed),
        ]);
        let report = check(
            &adds,
            &[
                found(2, "s-0000000003", 5),
                found(2, "s-0000000004", 6),
                found(3, "e-3", 7),
                found(9, "e-9", 8),
                found(4, "s-0000000001", 9),
            ],
        );
        assert_eq!(report.lost, [1]);
        assert_eq!(report.duplicated, [2]);
        assert_eq!(report.failed_but_present, [3]);
        assert_eq!(report.unexpected, [4, 9]);
        assert_eq!(report.misordered, ["s-0000000001"]);
        assert!(!report.valid());
    }

    #[test]
    fn suffixes() {
        assert_eq!(suffix("s-0000000042"), Some(42));
        assert_eq!(suffix("0000000042"), Some(42));
        assert_eq!(suffix("e-42"), None);
    }
}
