//! The six scenarios of the benchmark report, each against the baseline it is judged by.

pub mod edge_reads;
pub mod flash_sale;
pub mod invalidation;
pub mod mixed_day;
pub mod scale;
pub mod sell_out;
