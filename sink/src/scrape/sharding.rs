//! Which replica scrapes a target: rendezvous (highest-random-weight) hashing of the target's
//! key over the ready members of the sink's headless Service, and what a replica does while
//! the membership is not known.
//!
//! Every replica computes the same owner from the same member list, so a target is scraped by
//! exactly one of them; when a member joins or leaves only the targets it gains or loses move.
//! The hash is our own fixed function (FNV-1a, then a 64-bit finalizer), never the standard
//! library's hasher, whose output may change between Rust releases and would split a rolling
//! update into two disagreeing halves.
//!
//! Owns the ownership rule only; it must not talk to the API server nor start loops.

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One replica as its EndpointSlice endpoint describes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// What the hash weighs: the endpoint's first address (present on every endpoint).
    pub id: String,
    /// Names `self` may match: the addresses, `hostname` and `targetRef.name`.
    pub names: Vec<String>,
}

/// What a replica knows about its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Waiting for the first list of EndpointSlices (at most one scrape interval): nothing is
    /// scraped, so a restarting replica does not scrape every target once before it knows.
    Starting,
    /// The ready members (sorted by id, unique) and this replica's place among them.
    Known {
        members: Vec<Member>,
        this: Option<usize>,
    },
    /// No membership could be learned (no API client, or no list within the first interval):
    /// every target is scraped, as without sharding. A missing sample is lost for good, while
    /// a duplicate one is visible and refused by the backend as out of order.
    Unknown,
}

impl Membership {
    /// The membership from the ready endpoints of `slices`, `member` being this replica.
    pub fn from_slices<'a>(slices: impl Iterator<Item = &'a EndpointSlice>, member: &str) -> Self {
        let mut members: Vec<Member> = slices
            .flat_map(|slice| slice.endpoints.iter())
            // A missing `ready` condition means unknown, which consumers treat as ready.
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .filter_map(|e| {
                let id = e.addresses.first()?.clone();
                let mut names = e.addresses.clone();
                names.extend(e.hostname.clone());
                names.extend(e.target_ref.as_ref().and_then(|r| r.name.clone()));
                Some(Member { id, names })
            })
            .collect();
        members.sort();
        members.dedup_by(|a, b| a.id == b.id);
        let this = members
            .iter()
            .position(|m| m.names.iter().any(|n| n == member));
        Membership::Known { members, this }
    }

    /// Whether this replica scrapes the target with `key`.
    pub fn owns(&self, key: &str) -> bool {
        match self {
            Membership::Starting => false,
            Membership::Unknown => true,
            Membership::Known { members, this } => {
                this.is_some_and(|this| owner(members, key) == Some(this))
            }
        }
    }

    /// The state's name in logs and self-metrics.
    pub fn state(&self) -> &'static str {
        match self {
            Membership::Starting => "starting",
            Membership::Known { this: Some(_), .. } => "member",
            Membership::Known { this: None, .. } => "not_member",
            Membership::Unknown => "unknown",
        }
    }

    /// Ready members known (0 unless known).
    pub fn size(&self) -> usize {
        match self {
            Membership::Known { members, .. } => members.len(),
            _ => 0,
        }
    }
}

/// The stable key of a target: its job and URL.
pub fn target_key(job: &str, url: &str) -> String {
    format!("{job}\u{0}{url}")
}

/// The index of the member with the highest weight for `key` (ties: the lower id).
pub fn owner(members: &[Member], key: &str) -> Option<usize> {
    members
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            weight(&a.id, key)
                .cmp(&weight(&b.id, key))
                .then_with(|| b.id.cmp(&a.id))
        })
        .map(|(i, _)| i)
}

/// The rendezvous weight of `member` for `key`.
pub fn weight(member: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in member.bytes().chain([0xff]).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // FNV-1a mixes its last bytes poorly; a finalizer spreads them over all 64 bits.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(endpoints: &str) -> EndpointSlice {
        serde_json::from_str(&format!(
            r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"m-abc","namespace":"meshtap-system"}},"addressType":"IPv4","endpoints":{endpoints}}}"#
        ))
        .unwrap()
    }

    fn member(ip: &str) -> Member {
        Member {
            id: ip.to_owned(),
            names: vec![ip.to_owned()],
        }
    }

    #[test]
    fn the_weight_is_a_fixed_function() {
        // Pinned (computed independently): replicas of different builds must agree.
        let key = target_key("istiod", "http://istiod.istio-system.svc:15014/metrics");
        assert_eq!(weight("10.0.0.1", &key), 0xac7f_8e37_8337_dad4);
        assert_eq!(weight("10.0.0.2", &key), 0xb166_11a1_36e1_afba);
    }

    #[test]
    fn keys_spread_and_only_the_leavers_keys_move() {
        let three: Vec<Member> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(member).to_vec();
        let keys: Vec<String> = (0..3000)
            .map(|i| {
                target_key(
                    "pods",
                    &format!("http://10.1.{}.{}:15020/stats/prometheus", i / 250, i % 250),
                )
            })
            .collect();
        let before: Vec<usize> = keys.iter().map(|k| owner(&three, k).unwrap()).collect();
        for m in 0..3 {
            let share = before.iter().filter(|o| **o == m).count();
            assert!(
                (800..1200).contains(&share),
                "member {m} owns {share} of 3000"
            );
        }
        // Member 1 leaves: its keys spread over the others, nobody else's move.
        let two = vec![three[0].clone(), three[2].clone()];
        for (key, was) in keys.iter().zip(&before) {
            let now = &two[owner(&two, key).unwrap()].id;
            if *was != 1 {
                assert_eq!(now, &three[*was].id, "{key} moved");
            }
        }
    }

    #[test]
    fn membership_from_slices_keeps_ready_endpoints_and_finds_self() {
        let a = slice(
            r#"[{"addresses":["10.0.0.2"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","name":"sink-b","namespace":"meshtap-system"}},
                {"addresses":["10.0.0.9"],"conditions":{"ready":false,"terminating":true},"targetRef":{"kind":"Pod","name":"sink-z"}}]"#,
        );
        let b = slice(r#"[{"addresses":["10.0.0.1"],"targetRef":{"kind":"Pod","name":"sink-a"}}]"#);
        let m = Membership::from_slices([&a, &b].into_iter(), "sink-b");
        let Membership::Known { members, this } = &m else {
            panic!("{m:?}")
        };
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(*this, Some(1));
        assert_eq!(m.state(), "member");
        let by_ip = Membership::from_slices([&a, &b].into_iter(), "10.0.0.1");
        assert_eq!(by_ip.state(), "member");
        let leaving = Membership::from_slices([&a, &b].into_iter(), "sink-z");
        assert_eq!(leaving.state(), "not_member");
        assert!(!leaving.owns("anything"));
        // Exactly one of the two members owns each key.
        let as_a = Membership::from_slices([&a, &b].into_iter(), "sink-a");
        for i in 0..50 {
            let key = target_key("pods", &format!("http://10.1.0.{i}:15020/"));
            assert!(m.owns(&key) ^ as_a.owns(&key), "{key}");
        }
        assert!(!Membership::Starting.owns("k"));
        assert!(Membership::Unknown.owns("k"));
    }
}
