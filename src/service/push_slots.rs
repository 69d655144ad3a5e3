//! How many pushes may be in flight at once, in all and per user
//! (`max_concurrent_pushes`, `max_concurrent_pushes_per_user`): a push
//! holds a slot from its authorization to its report, and past either cap
//! it is refused (503) before any byte of its pack is read. Per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub struct PushSlots {
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: u32,
    per_user: HashMap<i64, u32>,
}

/// Which cap a push would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The server's.
    Server,
    /// The pusher's own.
    User,
}

impl Full {
    /// What the pusher is told (git shows it as `remote: ...`).
    pub fn message(self) -> &'static str {
        match self {
            Full::Server => "The server is handling as many pushes as it may; try again in a minute.",
            Full::User => "You have as many pushes in flight as you may; try again when one has finished.",
        }
    }
}

/// A slot; dropping it gives it back.
pub struct PushSlot {
    slots: Arc<PushSlots>,
    user: i64,
}

impl PushSlots {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // A panic elsewhere cannot leave the counts half-updated: every
        // change is one statement.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(c: &Counts, user: i64, max_total: u32, max_user: u32) -> Result<(), Full> {
        if c.total >= max_total {
            return Err(Full::Server);
        }
        if c.per_user.get(&user).copied().unwrap_or(0) >= max_user {
            return Err(Full::User);
        }
        Ok(())
    }

    /// Would a push by `user` get a slot now? (For the advertisement before
    /// a push, so that git shows the reason.)
    pub fn would_admit(&self, user: i64, max_total: u32, max_user: u32) -> Result<(), Full> {
        Self::check(&self.counts(), user, max_total, max_user)
    }

    /// Takes a slot for a push by `user`, or says which cap is reached.
    pub fn take(self: &Arc<Self>, user: i64, max_total: u32, max_user: u32) -> Result<PushSlot, Full> {
        let mut c = self.counts();
        Self::check(&c, user, max_total, max_user)?;
        c.total += 1;
        *c.per_user.entry(user).or_insert(0) += 1;
        Ok(PushSlot {
            slots: Arc::clone(self),
            user,
        })
    }

    /// Pushes in flight now.
    pub fn in_flight(&self) -> u32 {
        self.counts().total
    }
}

impl Drop for PushSlot {
    fn drop(&mut self) {
        let mut c = self.slots.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                c.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_user_and_slots_come_back() {
        let slots = Arc::new(PushSlots::default());
        let a1 = slots.take(1, 3, 2).unwrap();
        let _a2 = slots.take(1, 3, 2).unwrap();
        assert_eq!(slots.take(1, 3, 2).err(), Some(Full::User));
        assert_eq!(slots.would_admit(1, 3, 2), Err(Full::User));
        let _b1 = slots.take(2, 3, 2).unwrap();
        assert_eq!(slots.take(3, 3, 2).err(), Some(Full::Server));
        assert_eq!(slots.in_flight(), 3);
        drop(a1);
        assert_eq!(slots.would_admit(1, 3, 2), Ok(()));
        let _a3 = slots.take(1, 3, 2).unwrap();
        assert_eq!(slots.in_flight(), 3);
    }
}
