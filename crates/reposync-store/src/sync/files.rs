//! The tree's files as Git Sync reads them: a whole scope, or the current contents of given
//! paths, connectors included as their Source Repo Provider files.

use std::collections::HashMap;

use reposync_model::scope::app_of_path;
use sqlx::Row;

use crate::error::StoreError;
use crate::gate::Read;
use crate::rows::placeholders_from;
use crate::store::Store;

/// The contents of `paths` as `conn` sees them: entities, and connectors as their files.
pub(crate) async fn file_contents_in(
    conn: &mut sqlx::AnyConnection,
    paths: &[String],
) -> Result<HashMap<String, Vec<u8>>, StoreError> {
    let mut contents = HashMap::new();
    for chunk in paths.chunks(500) {
        let sql = format!(
            "SELECT path, content FROM entities WHERE path IN ({})",
            placeholders_from(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for path in chunk {
            query = query.bind(path.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            contents.insert(row.try_get("path")?, row.try_get("content")?);
        }
    }
    if paths.iter().any(|p| app_of_path(p).is_none()) {
        for row in sqlx::query("SELECT name, file FROM connectors")
            .fetch_all(&mut *conn)
            .await?
        {
            let name: String = row.try_get("name")?;
            let Ok(name) = reposync_model::EntityName::parse(&name) else {
                continue;
            };
            let path = reposync_model::connector_yaml::path(&name);
            if paths.contains(&path) {
                let file: String = row.try_get("file")?;
                contents.insert(path, file.into_bytes());
            }
        }
    }
    Ok(contents)
}

impl Store {
    /// The files of a scope as they are now: the application's folder, or the account's own
    /// files, connectors included.
    pub async fn scope_files(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = match app {
            Some(app) => {
                sqlx::query("SELECT path, content FROM entities WHERE app = $1")
                    .bind(app)
                    .read_all(&self.db)
                    .await?
            }
            None => {
                sqlx::query("SELECT path, content FROM entities WHERE app = ''")
                    .read_all(&self.db)
                    .await?
            }
        };
        let mut files: Vec<(String, Vec<u8>)> = rows
            .iter()
            .map(|r| Ok((r.try_get("path")?, r.try_get("content")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if app.is_none() {
            for connector in self.list_connectors().await? {
                files.push((
                    reposync_model::connector_yaml::path(&connector.spec.name),
                    connector.file.into_bytes(),
                ));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The current contents of `paths`; paths that do not exist are left out.
    pub async fn file_contents(
        &self,
        paths: &[String],
    ) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut conn = self.db.read_connection().await?;
        file_contents_in(&mut conn, paths).await
    }
}
