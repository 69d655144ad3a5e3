//! Git: the smart-HTTP protocol core (sans-I/O where it can be: pkt-lines,
//! advertisements, request parsing, negotiation, the pack-objects command
//! line, receive-pack) and repository storage on disk. This module knows
//! nothing of HTTP or the database.

pub mod advertise;
pub mod bundle;
pub mod intake;
pub mod leak_scan;
pub mod maintenance;
pub mod negotiate;
pub mod pack;
pub mod pack_cache;
pub mod pack_objects;
pub mod pack_stream;
pub mod pkt_reader;
pub mod pktline;
pub mod receive_pack;
pub mod refs;
pub mod store;
pub mod sweep;
pub mod upload_pack;
pub mod upload_pack_v2;
pub mod upload_request;

#[cfg(test)]
mod test_fixtures;

/// `binary` (a git) run on the bare repository `git_dir`, in it, with every
/// variable of the environment that could point it at other objects, refs
/// or a work tree removed. The one way gitpat starts git.
pub fn git_command(binary: &std::path::Path, git_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary);
    for var in [
        "GIT_WORK_TREE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_INDEX_FILE",
        "GIT_NAMESPACE",
        "GIT_PROTOCOL",
        "GIT_CEILING_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
        "GIT_SHALLOW_FILE",
    ] {
        cmd.env_remove(var);
    }
    // Absolute: git reads a relative GIT_DIR from the folder it starts in,
    // which is `git_dir` itself (the default data directory is relative).
    let git_dir = std::path::absolute(git_dir).unwrap_or_else(|_| git_dir.to_path_buf());
    cmd.env("GIT_DIR", &git_dir).current_dir(&git_dir);
    cmd
}
