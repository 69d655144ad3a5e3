//! Git: the smart-HTTP protocol core (sans-I/O where it can be: pkt-lines,
//! advertisements, request parsing, negotiation, the pack-objects command
//! line, receive-pack) and repository storage on disk. This module knows
//! nothing of HTTP or the database.

pub mod advertise;
pub mod intake;
pub mod maintenance;
pub mod negotiate;
pub mod pack;
pub mod pack_objects;
pub mod pack_stream;
pub mod pkt_reader;
pub mod pktline;
pub mod receive_pack;
pub mod store;
pub mod upload_pack;
pub mod upload_pack_v2;
pub mod upload_request;

#[cfg(test)]
mod test_fixtures;
