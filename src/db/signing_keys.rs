//! The `signing_keys` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable)]
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

#[derive(Debug, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub generation: i32,
    pub algorithm: &'a str,
    pub private_key: &'a [u8],
    pub public_key: &'a [u8],
    pub created_at: NaiveDateTime,
}

/// Keys that still verify, newest first.
pub fn list_unretired(conn: &mut DbConn) -> QueryResult<Vec<SigningKey>> {
    signing_keys::table
        .filter(signing_keys::retired_at.is_null())
        .order(signing_keys::generation.desc())
        .select(SigningKey::as_select())
        .load(conn)
}

/// Inserts a key; fails with a unique violation when another instance took the generation.
pub fn insert(conn: &mut DbConn, key: &NewSigningKey<'_>) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(key)
        .execute(conn)
        .map(drop)
}
