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

/// A zone's seats (all of them, or only those a batch names).
#[derive(Debug, Default)]
pub struct Board {
    /// Every seat of the zone (not only those a batch named).
    whole: bool,
    by_index: HashMap<i32, Place>,
    /// Indexes of each row's seats by position, for best available.
    rows: BTreeMap<i32, BTreeMap<i32, i32>>,
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
        let mut board = Self::default();
        for place in places {
            board
                .rows
                .entry(place.row_order)
                .or_default()
                .insert(place.position, place.index);
            board.by_index.insert(place.index, place);
        }
        board
    }

    /// Takes exactly `seats`, or none of them: `Err` lists those not free (taken, blocked,
    /// or not in the zone).
    pub fn take(&mut self, seats: &[i32]) -> Result<(), Vec<i32>> {
        let unavailable: Vec<i32> = seats
            .iter()
            .copied()
            .filter(|i| !self.by_index.get(i).is_some_and(|p| p.free))
            .collect();
        if !unavailable.is_empty() {
            return Err(unavailable);
        }
        for index in seats {
            if let Some(place) = self.by_index.get_mut(index) {
                place.free = false;
            }
        }
        Ok(())
    }

    /// Picks and takes the best block of `quantity` adjacent free seats, if there is one.
    pub fn take_best(&mut self, quantity: i32) -> Option<Vec<i32>> {
        let size = usize::try_from(quantity).ok().filter(|&q| q > 0)?;
        let chosen = self
            .rows
            .values()
            .find_map(|row| self.best_in_row(row, size))?;
        self.take(&chosen).ok()?;
        Some(chosen)
    }

    /// The best block of `size` in one row (positions → indexes), if any.
    fn best_in_row(&self, row: &BTreeMap<i32, i32>, size: usize) -> Option<Vec<i32>> {
        let free = |position: i32| {
            row.get(&position)
                .and_then(|i| self.by_index.get(i))
                .is_some_and(|p| p.free)
        };
        let (first, last) = (*row.keys().next()?, *row.keys().next_back()?);
        let centre2 = first + last; // twice the centre, to stay in integers
        let width = i32::try_from(size).ok()?;
        let mut best: Option<((bool, i32), i32)> = None;
        for &start in row.keys() {
            if !(start..start + width).all(free) {
                continue;
            }
            // A lone free seat left at either end of the block.
            let lone = |p: i32, beyond: i32| free(p) && !free(beyond);
            let leaves_single =
                lone(start - 1, start - 2) || lone(start + width, start + width + 1);
            let off_centre = (2 * start + width - 1 - centre2).abs();
            let score = (leaves_single, off_centre);
            if best.is_none_or(|(b, _)| score < b) {
                best = Some((score, start));
            }
        }
        let (_, start) = best?;
        (start..start + width)
            .map(|p| row.get(&p).copied())
            .collect()
    }

    /// Free seats left on the board.
    pub fn free_count(&self) -> usize {
        self.by_index.values().filter(|p| p.free).count()
    }
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
}
