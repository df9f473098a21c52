//! The seats a batch decides on: what was free under the zone's lock when the batch
//! began, taken request by request in arrival order. Pure (no I/O), so the choices are
//! unit-tested exactly.
//!
//! **Best available** picks `quantity` seats side by side (consecutive positions) in one
//! row: the frontmost row that has such a block; in that row a block that leaves no single
//! empty seat beside it where one exists; then the block nearest the row's centre. A buyer
//! never gets seats scattered: with no block of that size anywhere, the answer is a
//! refusal, however many seats are free.

use std::collections::{BTreeMap, HashMap};

/// One seat as the board knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub index: i32,
    pub row_order: i32,
    pub position: i32,
    pub free: bool,
}

/// A seat in its row.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: i32,
    position: i32,
    free: bool,
}

/// One row's seats by position, and how many are free: best available skips the rows
/// that cannot fit a request (in a hot sale, the popular front rows) without reading them.
#[derive(Debug, Default)]
struct Row {
    slots: Vec<Slot>,
    free: usize,
}

/// A zone's seats (all of them, or only those a batch names).
#[derive(Debug, Default)]
pub struct Board {
    /// Every seat of the zone (not only those a batch named).
    whole: bool,
    /// Where each seat is: its row (in `rows`) and its slot in the row.
    by_index: HashMap<i32, (usize, usize)>,
    /// Rows front to back.
    rows: Vec<Row>,
}

impl Board {
    /// A board of every seat of a zone.
    pub fn whole(places: impl IntoIterator<Item = Place>) -> Self {
        Self {
            whole: true,
            ..Self::new(places)
        }
    }

    pub fn is_whole(&self) -> bool {
        self.whole
    }

    /// A board of some of a zone's seats.
    pub fn new(places: impl IntoIterator<Item = Place>) -> Self {
        let mut by_row: BTreeMap<i32, Vec<Slot>> = BTreeMap::new();
        for place in places {
            by_row.entry(place.row_order).or_default().push(Slot {
                index: place.index,
                position: place.position,
                free: place.free,
            });
        }
        let mut board = Self::default();
        for (row_slot, mut slots) in by_row.into_values().enumerate() {
            slots.sort_unstable_by_key(|s| s.position);
            for (slot, seat) in slots.iter().enumerate() {
                board.by_index.insert(seat.index, (row_slot, slot));
            }
            let free = slots.iter().filter(|s| s.free).count();
            board.rows.push(Row { slots, free });
        }
        board
    }

    fn is_free(&self, index: i32) -> bool {
        self.by_index
            .get(&index)
            .is_some_and(|&(row, slot)| self.rows[row].slots[slot].free)
    }

    /// Takes exactly `seats`, or none of them: `Err` lists those not free (taken, blocked,
    /// or not in the zone).
    pub fn take(&mut self, seats: &[i32]) -> Result<(), Vec<i32>> {
        let unavailable: Vec<i32> = seats
            .iter()
            .copied()
            .filter(|&i| !self.is_free(i))
            .collect();
        if !unavailable.is_empty() {
            return Err(unavailable);
        }
        for index in seats {
            if let Some(&(row, slot)) = self.by_index.get(index) {
                let row = &mut self.rows[row];
                if std::mem::replace(&mut row.slots[slot].free, false) {
                    row.free -= 1;
                }
            }
        }
        Ok(())
    }

    /// Picks and takes the best block of `quantity` adjacent free seats, if there is one.
    pub fn take_best(&mut self, quantity: i32) -> Option<Vec<i32>> {
        let size = usize::try_from(quantity).ok().filter(|&q| q > 0)?;
        let chosen = self
            .rows
            .iter()
            .filter(|row| row.free >= size)
            .find_map(|row| best_in_row(row, size))?;
        self.take(&chosen).ok()?;
        Some(chosen)
    }

    /// Free seats left on the board.
    pub fn free_count(&self) -> usize {
        self.rows.iter().map(|row| row.free).sum()
    }
}

/// The best block of `size` in one row, if any: one pass over the row's runs of free
/// seats side by side (consecutive positions).
fn best_in_row(row: &Row, size: usize) -> Option<Vec<i32>> {
    let (first, last) = (row.slots.first()?.position, row.slots.last()?.position);
    let centre2 = i64::from(first) + i64::from(last); // twice the centre, in integers
    let mut best: Option<((bool, i64), usize)> = None;
    let mut run_start = 0;
    for end in 1..=row.slots.len() {
        let continues = end < row.slots.len()
            && row.slots[end].free
            && row.slots[end - 1].free
            && row.slots[end].position == row.slots[end - 1].position + 1;
        if continues {
            continue;
        }
        // `run_start..end` is a run of free seats side by side (or one taken seat).
        if row.slots[run_start].free && end - run_start >= size {
            for start in run_start..=end - size {
                // A lone free seat left at either end of the block, inside the run.
                let leaves_single = start - run_start == 1 || end - (start + size) == 1;
                let block_start = i64::from(row.slots[start].position);
                let off_centre = (2 * block_start + size as i64 - 1 - centre2).abs();
                let score = (leaves_single, off_centre);
                if best.is_none_or(|(b, _)| score < b) {
                    best = Some((score, start));
                }
            }
        }
        run_start = end;
    }
    let (_, start) = best?;
    Some(
        row.slots[start..start + size]
            .iter()
            .map(|s| s.index)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A board from rows drawn as text: `.` free, `x` taken, ` ` no seat (an aisle);
    /// seats indexed row by row, left to right.
    fn board(rows: &[&str]) -> Board {
        let mut index = 0;
        let mut places = Vec::new();
        for (row_order, row) in (0..).zip(rows) {
            for (position, c) in (0..).zip(row.chars()) {
                if c == ' ' {
                    continue;
                }
                places.push(Place {
                    index,
                    row_order,
                    position,
                    free: c == '.',
                });
                index += 1;
            }
        }
        Board::new(places)
    }

    #[test]
    fn exact_seats_are_all_or_nothing() {
        let mut b = board(&["..x.."]);
        assert_eq!(b.take(&[2, 3]), Err(vec![2]));
        assert_eq!(b.free_count(), 4, "nothing taken by a refusal");
        assert_eq!(b.take(&[3, 4]), Ok(()));
        assert_eq!(b.take(&[4]), Err(vec![4]), "taken by the request before");
        assert_eq!(b.take(&[99]), Err(vec![99]), "not in the zone");
    }

    #[test]
    fn best_is_the_front_row_then_the_centre() {
        // Row 0 has no block of 3; row 1's centre block is positions 2..=4 (seats 7..=9).
        let mut b = board(&["..x..", "......."]);
        assert_eq!(b.take_best(3), Some(vec![7, 8, 9]));
        assert_eq!(b.take_best(2), Some(vec![0, 1]), "row 0 has blocks of two");
    }

    #[test]
    fn best_avoids_leaving_a_single_empty_seat() {
        // Centre blocks of 2 would strand a seat; the edges leave none.
        let mut b = board(&["x....x", "......"]);
        // Positions 1..=4 free in row 0. Blocks: 1-2 leaves 3-4 (two, fine) and nothing
        // on the left (x); 2-3 strands 1 and 4; 3-4 leaves 1-2. Equal distance: the first.
        assert_eq!(b.take_best(2), Some(vec![1, 2]));
        // Row 0 now has 3-4 left: a block of 2 leaving nothing.
        assert_eq!(b.take_best(2), Some(vec![3, 4]));
    }

    #[test]
    fn a_single_gap_is_left_only_when_nothing_else_fits() {
        let mut b = board(&["x...x"]);
        // Any block of 2 strands one seat; it is still sold (front row first).
        assert_eq!(b.take_best(2), Some(vec![1, 2]));
    }

    #[test]
    fn an_aisle_breaks_adjacency_and_nothing_is_scattered() {
        let mut b = board(&[".. ..", ". . ."]);
        assert_eq!(
            b.take_best(3),
            None,
            "four free seats, no three side by side"
        );
        assert_eq!(b.free_count(), 7);
        assert_eq!(b.take_best(2), Some(vec![0, 1]));
    }

    /// The rule as stated, seat by seat: the frontmost row with a block of `size` free
    /// seats at consecutive positions; there the block that strands no single seat, then
    /// the one nearest the centre, then the leftmost.
    fn reference_best(places: &[Place], size: i32) -> Option<Vec<i32>> {
        let mut rows: BTreeMap<i32, BTreeMap<i32, (i32, bool)>> = BTreeMap::new();
        for p in places {
            rows.entry(p.row_order)
                .or_default()
                .insert(p.position, (p.index, p.free));
        }
        rows.values().find_map(|row| {
            let free = |pos: i32| row.get(&pos).is_some_and(|s| s.1);
            let (first, last) = (*row.keys().next()?, *row.keys().next_back()?);
            let mut best: Option<((bool, i32), i32)> = None;
            for &start in row.keys() {
                if !(start..start + size).all(free) {
                    continue;
                }
                let lone = |p: i32, beyond: i32| free(p) && !free(beyond);
                let single = lone(start - 1, start - 2) || lone(start + size, start + size + 1);
                let score = (single, (2 * start + size - 1 - first - last).abs());
                if best.is_none_or(|(b, _)| score < b) {
                    best = Some((score, start));
                }
            }
            let (_, start) = best?;
            Some((start..start + size).map(|p| row[&p].0).collect())
        })
    }

    proptest::proptest! {
        /// On any rows of free and taken seats with aisles, best available picks what the
        /// rule picks, request after request.
        #[test]
        fn best_available_picks_what_the_rule_picks(
            rows in proptest::collection::vec("[.x ]{1,24}", 1..6),
            sizes in proptest::collection::vec(1i32..5, 1..12),
        ) {
            let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
            let mut b = board(&rows);
            let mut places: Vec<Place> = Vec::new();
            let mut index = 0;
            for (row_order, row) in (0..).zip(&rows) {
                for (position, c) in (0..).zip(row.chars()) {
                    if c != ' ' {
                        places.push(Place { index, row_order, position, free: c == '.' });
                        index += 1;
                    }
                }
            }
            for size in sizes {
                let expected = reference_best(&places, size);
                proptest::prop_assert_eq!(b.take_best(size), expected.clone());
                for taken in expected.unwrap_or_default() {
                    if let Some(p) = places.iter_mut().find(|p| p.index == taken) {
                        p.free = false;
                    }
                }
                let free = places.iter().filter(|p| p.free).count();
                proptest::prop_assert_eq!(b.free_count(), free);
            }
        }
    }
}
