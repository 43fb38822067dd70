//! Passwords: the policy a new one must meet ([`policy`]), argon2id hashing as PHC strings
//! ([`hash`]), and the server's hashing threads ([`pool`]: low priority, one per core, a bounded
//! queue shared fairly between client addresses).

pub mod hash;
pub mod policy;
pub mod pool;
mod queue;

pub use hash::{hash_blocking, needs_rehash, verify_blocking};
pub use policy::{check_policy, normalize};
pub use pool::{Busy, HashLimits, Hasher, HeldHash};
