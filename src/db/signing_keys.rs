//! The `signing_keys` table. `retired_at` is when a key stops verifying: `NULL` for the key
//! that signs, and set (usually in the future) when a rotation replaces it, so that the
//! tokens it signed keep verifying until they have expired. A replaced key never signs
//! again, so the rotation also erases its private key: a later leak of the database (or of
//! a backup) cannot forge tokens with it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::signing_keys;
use super::{DbConn, REDACTED};

/// `Debug` leaves out the private key.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKey {
    pub kid: String,
    pub generation: i32,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub generation: i32,
    pub algorithm: &'a str,
    pub private_key: &'a [u8],
    pub public_key: &'a [u8],
    pub created_at: NaiveDateTime,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("generation", &self.generation)
            .field("algorithm", &self.algorithm)
            .field("private_key", &REDACTED)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Every key, retired ones too, newest first.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<SigningKey>> {
    signing_keys::table
        .order(signing_keys::generation.desc())
        .select(SigningKey::as_select())
        .load(conn)
}

/// Keys that still verify at `now`, newest first.
pub fn list_verifying(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<Vec<SigningKey>> {
    signing_keys::table
        .filter(
            signing_keys::retired_at
                .is_null()
                .or(signing_keys::retired_at.gt(now)),
        )
        .order(signing_keys::generation.desc())
        .select(SigningKey::as_select())
        .load(conn)
}

pub fn max_generation(conn: &mut DbConn) -> QueryResult<Option<i32>> {
    signing_keys::table
        .select(diesel::dsl::max(signing_keys::generation))
        .get_result(conn)
}

/// Gives every key that has no retirement time yet (the one that signed) the time `at`;
/// answers their kids.
pub fn schedule_retirement(conn: &mut DbConn, at: NaiveDateTime) -> QueryResult<Vec<String>> {
    diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
        .set(signing_keys::retired_at.eq(at))
        .returning(signing_keys::kid)
        .get_results(conn)
}

/// Erases the private key of every key that has a retirement time (they only verify), those
/// replaced before rotations erased them too; answers how many it erased.
pub fn erase_retired_private_keys(conn: &mut DbConn) -> QueryResult<usize> {
    let retired_with_a_private_key = signing_keys::table
        .filter(signing_keys::retired_at.is_not_null())
        .filter(signing_keys::private_key.ne(Vec::<u8>::new()));
    diesel::update(retired_with_a_private_key)
        .set(signing_keys::private_key.eq(Vec::<u8>::new()))
        .execute(conn)
}

/// Inserts a key; fails with a unique violation when another instance took the generation.
pub fn insert(conn: &mut DbConn, key: &NewSigningKey<'_>) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(key)
        .execute(conn)
        .map(drop)
}

/// Replaces a key's stored private key, if it still is `current`; answers 0 or 1.
pub fn replace_private_key(
    conn: &mut DbConn,
    kid: &str,
    current: &[u8],
    replacement: &[u8],
) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .find(kid)
            .filter(signing_keys::private_key.eq(current)),
    )
    .set(signing_keys::private_key.eq(replacement))
    .execute(conn)
}
