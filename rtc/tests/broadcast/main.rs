//! `Broadcast` against str0m client peers, in memory, in simulated time.

mod decode;
mod offers;
mod sim;
mod viewers;
