//! `Broadcast` against str0m client peers, in memory, in simulated time.

mod offers;
mod sim;
mod viewers;
