//! The dynamic pool allocator.
//!
//! Addresses never handed out are taken in address order from a cursor;
//! addresses that come back (released, expired, out of probation) are
//! handed out again oldest first, so a client that returns soon after its
//! lease ended usually finds its old address still free. Every operation
//! is O(1) or O(log n), and memory grows with the addresses in use, not
//! with the size of the pool (a /8 pool costs nothing until used).

use crate::time::Timestamp;
use netvm_description::values::Ipv4Range;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

/// Free and used addresses of one pool.
#[derive(Debug, Clone)]
pub struct Pool {
    first: u32,
    last: u32,
    /// Offsets at and above this were never handed out by the cursor.
    cursor: u64,
    /// Offsets at or above the cursor that are in use (or were, and now
    /// wait in `returned`).
    ahead: HashSet<u32>,
    /// Returned offsets, oldest first.
    returned: BTreeSet<(Timestamp, u32)>,
    returned_at: HashMap<u32, Timestamp>,
    in_use: u64,
}

impl Pool {
    /// A pool with every address of `range` free.
    pub fn new(range: Ipv4Range) -> Pool {
        Pool {
            first: u32::from(range.first()),
            last: u32::from(range.last()),
            cursor: 0,
            ahead: HashSet::new(),
            returned: BTreeSet::new(),
            returned_at: HashMap::new(),
            in_use: 0,
        }
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let n = u32::from(ip);
        (self.first..=self.last)
            .contains(&n)
            .then(|| n - self.first)
    }

    fn size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    /// True when `ip` belongs to the pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset(ip).is_some()
    }

    /// True when `ip` belongs to the pool and nobody uses it.
    pub fn is_free(&self, ip: Ipv4Addr) -> bool {
        self.offset(ip).is_some_and(|off| {
            self.returned_at.contains_key(&off)
                || (u64::from(off) >= self.cursor && !self.ahead.contains(&off))
        })
    }

    /// Marks `ip` used; false when it is not a free pool address.
    pub fn take(&mut self, ip: Ipv4Addr) -> bool {
        let Some(off) = self.offset(ip) else {
            return false;
        };
        if let Some(at) = self.returned_at.remove(&off) {
            self.returned.remove(&(at, off));
        } else if u64::from(off) < self.cursor || !self.ahead.insert(off) {
            return false;
        }
        self.in_use += 1;
        true
    }

    /// Takes a free address: a never-used one first, else the one free the
    /// longest.
    pub fn take_any(&mut self) -> Option<Ipv4Addr> {
        while self.cursor < self.size() {
            let off = u32::try_from(self.cursor).expect("cursor stays below the pool size");
            self.cursor += 1;
            // Below the cursor, state is kept by `returned` alone.
            if !self.ahead.remove(&off) {
                self.in_use += 1;
                return Some(Ipv4Addr::from(self.first + off));
            }
        }
        let (at, off) = self.returned.pop_first()?;
        debug_assert_eq!(self.returned_at.get(&off), Some(&at));
        self.returned_at.remove(&off);
        self.in_use += 1;
        Some(Ipv4Addr::from(self.first + off))
    }

    /// Returns a used address to the pool at `now`.
    pub fn give_back(&mut self, ip: Ipv4Addr, now: Timestamp) {
        let Some(off) = self.offset(ip) else {
            return;
        };
        if self.returned_at.contains_key(&off) {
            return;
        }
        if u64::from(off) >= self.cursor && !self.ahead.contains(&off) {
            return; // never taken
        }
        self.returned.insert((now, off));
        self.returned_at.insert(off, now);
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// Addresses in use.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Free addresses.
    pub fn free(&self) -> u64 {
        self.size() - self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: u8) -> Pool {
        Pool::new(
            Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, n)).expect("range"),
        )
    }

    #[test]
    fn fresh_addresses_first_then_oldest_returned() {
        let mut p = pool(3);
        let a = p.take_any().expect("a");
        let b = p.take_any().expect("b");
        p.give_back(a, Timestamp(10));
        assert_eq!(
            p.take_any(),
            Some(Ipv4Addr::new(10, 0, 0, 3)),
            "fresh before returned"
        );
        p.give_back(b, Timestamp(5));
        assert_eq!(p.take_any(), Some(b), "returned earlier goes first");
        assert_eq!(p.take_any(), Some(a));
        assert_eq!(p.take_any(), None);
        assert_eq!((p.in_use(), p.free()), (3, 0));
    }

    #[test]
    fn taking_a_specific_address_ahead_of_the_cursor() {
        let mut p = pool(3);
        let third = Ipv4Addr::new(10, 0, 0, 3);
        assert!(p.take(third));
        assert!(!p.take(third), "already used");
        assert!(!p.is_free(third));
        assert_eq!(p.take_any(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(p.take_any(), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(p.take_any(), None, "the cursor skips the taken one");
        p.give_back(third, Timestamp(1));
        assert!(p.is_free(third));
        assert_eq!(p.take_any(), Some(third));
        assert!(!p.take(Ipv4Addr::new(10, 0, 0, 9)), "outside the pool");
    }

    #[test]
    fn a_huge_pool_costs_nothing_up_front() {
        let range = Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 255, 255, 254))
            .expect("range");
        let mut p = Pool::new(range);
        assert_eq!(p.free(), 16_777_214);
        assert_eq!(p.take_any(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }
}
