//! The hashing queue: bounded, one FIFO per client address, served round-robin.

use std::collections::{HashMap, VecDeque};

pub(super) type Job = Box<dyn FnOnce() + Send>;

/// How much hashing work may wait. Beyond either bound a request is refused at once ([`Busy`]: a
/// quick `503` with `Retry-After`) instead of waiting behind seconds of other people's hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashing threads: one per core (at nice 10, so page serving still wins).
    pub threads: usize,
    /// Jobs waiting (not yet started) over all clients.
    pub queue: usize,
    /// Jobs waiting for one client address: one address can never fill the whole queue.
    pub per_client: usize,
}

impl HashLimits {
    /// The defaults for `threads` threads: 16 waiting jobs per thread for one address (under a
    /// second of hashing at OWASP's parameters) and 64 per thread in all.
    pub fn for_threads(threads: usize) -> Self {
        let threads = threads.max(1);
        Self { threads, queue: 64 * threads, per_client: 16 * threads }
    }
}

/// The hashing queue is full (in all, or for this client address): the request is refused before
/// any hashing. A handler that `?`s it answers a `503` page with `Retry-After` (`AppError::Busy`).
#[derive(Debug, thiserror::Error)]
#[error("too many passwords are being checked right now")]
pub struct Busy;

/// The waiting jobs, one FIFO per client address, served round-robin: each address with work
/// waiting gets the next free thread in turn. So a flood from one address delays another address
/// by at most about one hash, and an address alone (an office behind one NAT) still gets every
/// thread when nobody else is waiting.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) by_client: HashMap<String, VecDeque<Job>>,
    /// Addresses with waiting jobs, in the order they get a thread.
    turn: VecDeque<String>,
    pub(super) waiting: usize,
    /// Set when the last `Hasher` is dropped: the threads finish what is queued, then stop.
    pub(super) closed: bool,
}

impl Queue {
    pub(super) fn push(&mut self, client: String, job: Job, limits: &HashLimits) -> Result<(), Busy> {
        if self.waiting >= limits.queue {
            return Err(Busy);
        }
        let jobs = self.by_client.entry(client.clone()).or_default();
        if jobs.len() >= limits.per_client {
            return Err(Busy);
        }
        jobs.push_back(job);
        if jobs.len() == 1 {
            // It had nothing waiting: it joins the end of the round.
            self.turn.push_back(client);
        }
        self.waiting += 1;
        Ok(())
    }

    /// The next job in round-robin order.
    pub(super) fn next(&mut self) -> Option<Job> {
        let client = self.turn.pop_front()?;
        let jobs = self.by_client.get_mut(&client)?;
        let job = jobs.pop_front()?;
        if jobs.is_empty() {
            self.by_client.remove(&client);
        } else {
            self.turn.push_back(client);
        }
        self.waiting -= 1;
        Some(job)
    }
}

/// The key hashing capacity is shared by: the client address, an IPv6 address by its /64 (one
/// subscriber's network: an attacker there has 2^64 addresses to spread a flood over).
pub(super) fn fairness_key(client: &str) -> String {
    match client.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        _ => client.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_by_their_64_and_mapped_ipv4_by_the_address() {
        assert_eq!(fairness_key("2001:db8:1:2:aaaa::1"), fairness_key("2001:db8:1:2:bbbb::2"));
        assert_ne!(fairness_key("2001:db8:1:2::1"), fairness_key("2001:db8:1:3::1"));
        assert_eq!(fairness_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(fairness_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(fairness_key(""), "");
    }
}
