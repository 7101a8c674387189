//! An open-addressing hash table from a name to the positions of the entries that carry it.
//!
//! A slot holds a position and a few bits of the name's hash, never the name: the entry already
//! owns it, and a lookup compares against the entry. Almost every name appears once, so the
//! first position lives in the slot and only repeats (the same name with other ports, say) go to
//! a side table.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use crate::pattern::{HostPattern, Pattern};

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The high half of the name's hash; compared before the entry is touched.
    tag: u32,
    /// The first entry with this name; `EMPTY` for a free slot.
    position: u32,
}

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Debug, Default)]
pub struct NameTable {
    /// A power of two long (or empty), at most half full, so probe runs stay short.
    slots: Box<[Slot]>,
    /// First position → the later positions with the same name, in order.
    repeats: HashMap<u32, Vec<u32>>,
    /// Seeded per table: names come from the file, but nobody can pick names that collide.
    hasher: RandomState,
}

/// The name an entry is filed under.
fn name_of(pattern: &Pattern) -> &str {
    match &pattern.host {
        HostPattern::Exact(n)
        | HostPattern::Subdomains(n)
        | HostPattern::DomainAndSubdomains(n) => n,
        HostPattern::Ip(_) | HostPattern::Net(_) => "",
    }
}

impl NameTable {
    /// A table of the entries of `patterns` whose host pattern is of the kind `wanted` accepts.
    pub fn new(patterns: &[Pattern], wanted: impl Fn(&HostPattern) -> bool) -> NameTable {
        assert!(
            patterns.len() < EMPTY as usize,
            "more than 4 billion entries in one list"
        );
        let count = patterns.iter().filter(|p| wanted(&p.host)).count();
        let mut table = NameTable::default();
        if count == 0 {
            return table;
        }
        let length = (count * 2).next_power_of_two();
        table.slots = vec![
            Slot {
                tag: 0,
                position: EMPTY
            };
            length
        ]
        .into_boxed_slice();
        for (position, pattern) in patterns.iter().enumerate() {
            if wanted(&pattern.host) {
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
        let hash = self.hasher.hash_one(name);
        (
            (hash as usize) & (self.slots.len() - 1),
            (hash >> 32) as u32,
        )
    }

    /// Calls `visit` with the position of every entry filed under `name`.
    pub fn for_each(&self, patterns: &[Pattern], name: &str, visit: &mut impl FnMut(usize)) {
        if self.slots.is_empty() {
            return;
        }
        let (mut at, tag) = self.start(name);
        loop {
            let slot = self.slots[at];
            if slot.position == EMPTY {
                return;
            }
            if slot.tag == tag && name_of(&patterns[slot.position as usize]) == name {
                visit(slot.position as usize);
                if let Some(more) = self.repeats.get(&slot.position) {
                    more.iter().for_each(|p| visit(*p as usize));
                }
                return;
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }
}
