//! The etcd key schema (ARCHITECTURE.md §5). Every key the controller reads
//! or writes is built here, so the layout is in one place and a typo cannot
//! create a stray key.

/// Builds the keys of one cluster under `/switchyard/<cluster>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys of cluster `cluster`.
    pub fn new(cluster: &str) -> Self {
        Keys {
            prefix: format!("/switchyard/{cluster}"),
        }
    }

    /// The section of the schema `prefix` lies in (`journal`, `history`…),
    /// a short label for metrics.
    pub fn section_of(&self, prefix: &str) -> String {
        prefix
            .strip_prefix(&self.prefix)
            .unwrap_or(prefix)
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// The election name; candidates' keys live under it (`…/leader/<lease>`).
    pub fn leader(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// A region's verdict, since and reasons.
    pub fn region(&self, region: &str) -> String {
        format!("{}/state/regions/{region}", self.prefix)
    }

    /// Prefix of every region state key.
    pub fn regions_prefix(&self) -> String {
        format!("{}/state/regions/", self.prefix)
    }

    /// The desired weights of a DNS record.
    pub fn traffic(&self, record: &str) -> String {
        format!("{}/state/traffic/{record}", self.prefix)
    }

    /// Prefix of every desired-weights key.
    pub fn traffic_prefix(&self) -> String {
        format!("{}/state/traffic/", self.prefix)
    }

    /// What the engine would do now, as the leader last published it
    /// (`switchyard plan`).
    pub fn plan(&self) -> String {
        format!("{}/state/plan", self.prefix)
    }

    /// The alarms standing now, as the leader last published them.
    pub fn alarms(&self) -> String {
        format!("{}/state/alarms", self.prefix)
    }

    /// A database's primary and epoch.
    pub fn database(&self, db: &str) -> String {
        format!("{}/state/databases/{db}", self.prefix)
    }

    /// Prefix of every database state key.
    pub fn databases_prefix(&self) -> String {
        format!("{}/state/databases/", self.prefix)
    }

    /// One journal entry (intent, status, outcome).
    pub fn journal(&self, id: &str) -> String {
        format!("{}/journal/{id}", self.prefix)
    }

    /// Prefix of the journal.
    pub fn journal_prefix(&self) -> String {
        format!("{}/journal/", self.prefix)
    }

    /// One history event; `ts_id` sorts by time (`<ts>-<id>`).
    pub fn history(&self, ts_id: &str) -> String {
        format!("{}/history/{ts_id}", self.prefix)
    }

    /// Prefix of the history.
    pub fn history_prefix(&self) -> String {
        format!("{}/history/", self.prefix)
    }

    /// Prefix of every operator switch and request (pause, drains,
    /// failback approvals, requests and their waits): what the leader reads
    /// in one range each tick.
    pub fn control_prefix(&self) -> String {
        format!("{}/control/", self.prefix)
    }

    /// Present when automation is paused.
    pub fn pause(&self) -> String {
        format!("{}/control/pause", self.prefix)
    }

    /// Present when an operator drained region `region`.
    pub fn drain(&self, region: &str) -> String {
        format!("{}/control/drain/{region}", self.prefix)
    }

    /// Prefix of every drain key.
    pub fn drains_prefix(&self) -> String {
        format!("{}/control/drain/", self.prefix)
    }

    /// Present when an operator approved region `region`'s manual failback;
    /// the value is when (RFC 3339), so an old approval cannot release a
    /// later outage.
    pub fn failback(&self, region: &str) -> String {
        format!("{}/control/failback/{region}", self.prefix)
    }

    /// Prefix of every failback approval.
    pub fn failbacks_prefix(&self) -> String {
        format!("{}/control/failback/", self.prefix)
    }

    /// An operator's request (failover, switchover) waiting for the leader.
    pub fn request(&self, id: &str) -> String {
        format!("{}/control/requests/{id}", self.prefix)
    }

    /// Why the leader has not started operator request `id` yet (its
    /// failover waits at the promotion gate), for the CLI to say.
    pub fn request_waiting(&self, id: &str) -> String {
        format!("{}/control/waiting/{id}", self.prefix)
    }

    /// Prefix of every pending operator request.
    pub fn requests_prefix(&self) -> String {
        format!("{}/control/requests/", self.prefix)
    }

    /// A database's primary lease: held by the controller of the primary's
    /// region, attached to an etcd lease, so that it vanishes when that
    /// controller stops renewing it (ARCHITECTURE.md §5, split brain).
    pub fn primary_lease(&self, db: &str) -> String {
        format!("{}/leases/primary/{db}", self.prefix)
    }

    /// The last primary lease taken for a database's (primary, epoch): a
    /// plain key with no TTL, so a leader can tell a new primary its region
    /// has not vouched for yet from one whose lease expired.
    pub fn vouched(&self, db: &str) -> String {
        format!("{}/leases/vouched/{db}", self.prefix)
    }

    /// Accounts that bypass `read_only` on a database's members (member →
    /// accounts), as the leader last read them: a fence cannot stop them,
    /// so `status` names them.
    pub fn bypass(&self, db: &str) -> String {
        format!("{}/state/bypass/{db}", self.prefix)
    }

    /// Prefix of every bypass report.
    pub fn bypass_prefix(&self) -> String {
        format!("{}/state/bypass/", self.prefix)
    }

    /// Prefix of every primary lease.
    pub fn primary_leases_prefix(&self) -> String {
        format!("{}/leases/primary/", self.prefix)
    }

    /// A member fenced by its region's controller (while isolated, or when
    /// it gave up the lease of a primary it could no longer read): the
    /// promotion gate trusts it, the leader lifts it when the member is
    /// the primary again and its region is healthy, and a promotion of the
    /// member deletes it.
    pub fn fence(&self, db: &str, member: &str) -> String {
        format!("{}/state/fences/{db}/{member}", self.prefix)
    }

    /// Where controller `id` registers the gRPC address its peers ping
    /// (listeners may be bound to port 0, so the config alone cannot say).
    pub fn controller(&self, id: &str) -> String {
        format!("{}/controllers/{id}", self.prefix)
    }

    /// Prefix of every controller registration.
    pub fn controllers_prefix(&self) -> String {
        format!("{}/controllers/", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_schema() {
        let k = Keys::new("prod");
        assert_eq!(k.leader(), "/switchyard/prod/leader");
        assert_eq!(
            k.region("us-east"),
            "/switchyard/prod/state/regions/us-east"
        );
        assert_eq!(
            k.traffic("api.example.com."),
            "/switchyard/prod/state/traffic/api.example.com."
        );
        assert_eq!(
            k.database("orders"),
            "/switchyard/prod/state/databases/orders"
        );
        assert_eq!(k.journal("0001"), "/switchyard/prod/journal/0001");
        assert_eq!(k.history("17-0001"), "/switchyard/prod/history/17-0001");
        assert_eq!(k.pause(), "/switchyard/prod/control/pause");
        assert_eq!(k.drain("eu-west"), "/switchyard/prod/control/drain/eu-west");
        assert!(k.drain("x").starts_with(&k.drains_prefix()));
        assert!(k.journal("x").starts_with(&k.journal_prefix()));
    }
}
