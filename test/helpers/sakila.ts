import type { Queryable } from '../../src/engine/db/pool.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { modelKey, type ModelRow, type ModelSpec } from './model.js';

/**
 * Sakila for the end-to-end tests. The model identifies rows by natural content: a film by its
 * title, an actor by name, a film_actor by actor name and film title (timestamps the server sets
 * itself are left out).
 */
export const SAKILA_MODEL: ModelSpec = {
  tables: ['language', 'category', 'film', 'actor', 'film_actor', 'film_category'],
  keys: {
    language: ['name'],
    category: ['name'],
    film: ['title'],
    actor: ['first_name', 'last_name'],
    film_actor: ['actor_id', 'film_id'],
    film_category: ['film_id', 'category_id'],
  },
  ignore: {
    language: ['last_update'],
    category: ['last_update'],
    film: ['last_update'],
    actor: ['last_update'],
    film_actor: ['last_update'],
    film_category: ['last_update'],
  },
};

export const actorKey = (first: string, last: string) => modelKey(first, last);
export const pairKey = (a: string, b: string) => modelKey(a, b);

export interface NewFilm {
  title: string;
  description: string;
  length: number;
}

/** Every column of a new film, as inserted and as the model must show it. */
export function filmRow(f: NewFilm): {
  sql: Record<string, string | number | null>;
  model: ModelRow;
} {
  return {
    sql: {
      title: f.title,
      description: f.description,
      release_year: 2026,
      language_id: 1,
      original_language_id: null,
      rental_duration: 5,
      rental_rate: '2.99',
      length: f.length,
      replacement_cost: '14.99',
      rating: 'PG',
      special_features: 'Trailers,Commentaries',
    },
    model: {
      title: f.title,
      description: f.description,
      release_year: '2026',
      language_id: 'English',
      original_language_id: null,
      rental_duration: '5',
      rental_rate: '2.99',
      length: String(f.length),
      replacement_cost: '14.99',
      rating: 'PG',
      special_features: 'Trailers,Commentaries',
    },
  };
}

export async function idBy(db: Queryable, sql: string, params: unknown[]): Promise<number> {
  const rows = await queryRows(db, sql, params);
  if (rows.length !== 1) throw new Error(`expected one row for ${sql} ${JSON.stringify(params)}`);
  return Number(Object.values(rows[0]!)[0]);
}

export const filmId = (db: Queryable, title: string) =>
  idBy(db, 'SELECT film_id FROM film WHERE title = ?', [title]);

/** Deletes a film with no inventory, its cast and its categories, as a shop clerk would. */
export async function deleteFilm(db: Queryable, title: string): Promise<void> {
  const id = await filmId(db, title);
  await execute(db, 'DELETE FROM film_actor WHERE film_id = ?', [id]);
  await execute(db, 'DELETE FROM film_category WHERE film_id = ?', [id]);
  await execute(db, 'DELETE FROM film WHERE film_id = ?', [id]);
}
