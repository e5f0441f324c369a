//! `Broadcast` against str0m client peers, in memory, in simulated time.

mod decode;
mod loss;
mod offers;
mod shards;
mod sim;
mod slow;
mod tcp;
mod viewers;
mod vp8;
