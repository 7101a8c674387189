//! An open-addressing hash table from a name to the positions of the entries that carry it,
//! of every kind (`name`, `*.name`, `.name`): one probe per label of the target serves them all.
//!
//! A slot holds a position and a few bits of the name's hash, never the name: the entry already
//! owns it, and a lookup compares against the entry. Almost every name appears once, so the
//! first position lives in the slot and only repeats (the same name with other ports, say) go to
//! a side table.

use std::collections::HashMap;

use super::hash::Key;
use crate::pattern::{HostPattern, Pattern};

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The high half of the name's hash; compared before the entry is touched.
    tag: u32,
    /// The first entry with this name; `EMPTY` for a free slot.
    position: u32,
}

const EMPTY: u32 = u32::MAX;
const EMPTY_SLOT: Slot = Slot {
    tag: 0,
    position: EMPTY,
};

#[derive(Clone, Debug, Default)]
pub struct NameTable {
    /// A power of two long (or empty), at most half full, so probe runs stay short.
    slots: Box<[Slot]>,
    /// First position → the later positions with the same name, in order.
    repeats: HashMap<u32, Vec<u32>>,
    key: Key,
}

/// The name an entry is filed under.
fn name_of(pattern: &Pattern) -> &str {
    match pattern.host() {
        HostPattern::Exact(n)
        | HostPattern::Subdomains(n)
        | HostPattern::DomainAndSubdomains(n) => n,
        HostPattern::Ip(_) | HostPattern::Net(_) => "",
    }
}

impl NameTable {
    /// A table of the name entries of `patterns`.
    pub fn new(patterns: &[Pattern]) -> NameTable {
        let wanted = |host: HostPattern| !matches!(host, HostPattern::Ip(_) | HostPattern::Net(_));
        assert!(
            patterns.len() < EMPTY as usize,
            "more than 4 billion entries in one list"
        );
        let count = patterns.iter().filter(|p| wanted(p.host())).count();
        let mut table = NameTable::default();
        if count == 0 {
            return table;
        }
        let length = (count * 2).next_power_of_two();
        table.slots = vec![EMPTY_SLOT; length].into_boxed_slice();
        for (position, pattern) in patterns.iter().enumerate() {
            if wanted(pattern.host()) {
                table.insert(patterns, position as u32);
            }
        }
        table
    }

    fn insert(&mut self, patterns: &[Pattern], position: u32) {
        let name = name_of(&patterns[position as usize]);
        let (mut at, tag) = self.start(name);
        loop {
            let slot = &mut self.slots[at];
            if slot.position == EMPTY {
                *slot = Slot { tag, position };
                return;
            }
            if slot.tag == tag && name_of(&patterns[slot.position as usize]) == name {
                self.repeats
                    .entry(slot.position)
                    .or_default()
                    .push(position);
                return;
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }

    /// The first slot to probe for `name`, and its tag.
    fn start(&self, name: &str) -> (usize, u32) {
        let hash = self.key.hash(name.as_bytes());
        (
            (hash as usize) & (self.slots.len() - 1),
            (hash >> 32) as u32,
        )
    }

    /// Calls `visit(position, whole)` for every entry filed under `name` (`whole` true) or
    /// under one of its parents (`whole` false).
    ///
    /// The first slot of every suffix is read before any is examined: those reads do not depend
    /// on each other, so the processor overlaps their cache misses instead of taking them one
    /// after another (a table of a million names is far larger than the caches).
    pub fn for_each_suffix(
        &self,
        patterns: &[Pattern],
        name: &str,
        visit: &mut impl FnMut(usize, bool),
    ) {
        if self.slots.is_empty() {
            return;
        }
        const BATCH: usize = 16;
        let mut next = Some(0);
        while next.is_some() {
            let mut batch = [(0, 0, 0, EMPTY_SLOT); BATCH];
            let mut count = 0;
            while let Some(offset) = next.filter(|_| count < BATCH) {
                let suffix = &name[offset..];
                let (at, tag) = self.start(suffix);
                batch[count] = (offset, at, tag, self.slots[at]);
                count += 1;
                next = suffix.find('.').map(|dot| offset + dot + 1);
            }
            for &(offset, at, tag, slot) in &batch[..count] {
                let suffix = &name[offset..];
                if let Some(first) = self.resolve(patterns, suffix, at, tag, slot) {
                    visit(first as usize, offset == 0);
                    if let Some(more) = self.repeats.get(&first) {
                        more.iter().for_each(|p| visit(*p as usize, offset == 0));
                    }
                }
            }
        }
    }

    /// The first position filed under `name`, probing from slot `at` (already read: `slot`).
    fn resolve(
        &self,
        patterns: &[Pattern],
        name: &str,
        mut at: usize,
        tag: u32,
        mut slot: Slot,
    ) -> Option<u32> {
        loop {
            if slot.position == EMPTY {
                return None;
            }
            if slot.tag == tag && name_of(&patterns[slot.position as usize]) == name {
                return Some(slot.position);
            }
            at = (at + 1) & (self.slots.len() - 1);
            slot = self.slots[at];
        }
    }
}
