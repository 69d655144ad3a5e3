//! Who may do what in a repository: GitLab's roles and visibility.

use chrono::NaiveDate;

use crate::db::{self, project::Project, user::User, DbConn};
use crate::error::Result;

/// GitLab's access levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Guest = 10,
    Reporter = 20,
    Developer = 30,
    Maintainer = 40,
    Owner = 50,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Guest,
        Role::Reporter,
        Role::Developer,
        Role::Maintainer,
        Role::Owner,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Reporter => "reporter",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s) || (*r as i32).to_string() == s)
    }

    pub fn from_level(level: i32) -> Option<Role> {
        Role::ALL.into_iter().find(|r| *r as i32 == level)
    }
}

pub const VISIBILITIES: [&str; 3] = ["private", "internal", "public"];

/// What a caller may do in one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The caller may know the repository exists.
    pub see: bool,
    pub pull: bool,
    pub push: bool,
    /// May push to (and delete) protected branches.
    pub push_protected: bool,
}

impl Access {
    pub const NONE: Access = Access {
        see: false,
        pull: false,
        push: false,
        push_protected: false,
    };
}

/// The caller's role in a project: the owner is Owner, members have theirs
/// until their membership expires.
pub fn role(conn: &mut DbConn, user: &User, project: &Project, today: NaiveDate) -> Result<Option<Role>> {
    if project.owner_id == user.id {
        return Ok(Some(Role::Owner));
    }
    Ok(db::member::find(conn, project.id, user.id)?
        .filter(|m| m.active_on(today))
        .and_then(|m| Role::from_level(m.access_level)))
}

/// Access of `user` (None: anonymous) to `project`: admins may do anything;
/// reporters and up pull; developers and up push; maintainers and owners
/// push to protected branches; anyone pulls a public repository, and any
/// signed-in user an internal one.
pub fn access(conn: &mut DbConn, user: Option<&User>, project: &Project, today: NaiveDate) -> Result<Access> {
    let by_visibility = match (project.visibility.as_str(), user.is_some()) {
        ("public", _) | ("internal", true) => Access {
            see: true,
            pull: true,
            push: false,
            push_protected: false,
        },
        _ => Access::NONE,
    };
    let Some(user) = user else { return Ok(by_visibility) };
    if user.is_blocked() {
        return Ok(Access::NONE);
    }
    if user.is_admin {
        return Ok(Access {
            see: true,
            pull: true,
            push: true,
            push_protected: true,
        });
    }
    let Some(role) = role(conn, user, project, today)? else {
        return Ok(by_visibility);
    };
    Ok(Access {
        see: true,
        pull: by_visibility.pull || role >= Role::Reporter,
        push: role >= Role::Developer,
        push_protected: role >= Role::Maintainer,
    })
}
