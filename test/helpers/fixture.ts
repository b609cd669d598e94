import type { Queryable } from '../../src/engine/db/pool.js';
import { execute } from '../../src/engine/db/pool.js';

/**
 * A small schema with the hard parts of OpenMRS, so the project's tests stand on their own:
 * uuids, a users ↔ person cycle, a primary key that is also a foreign key (patient), a composite
 * key (user_role), a text key (global_property), a keyless mapping table, a cascade, utf8mb3.
 */
export const CLINIC_SCHEMA = [
  `CREATE TABLE users (
     user_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
     username VARCHAR(50) NULL,
     person_id INT NULL,
     creator INT NULL,
     uuid CHAR(38) NOT NULL UNIQUE
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE person (
     person_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
     gender VARCHAR(50) DEFAULT '',
     birthdate DATE NULL,
     creator INT NULL,
     date_created DATETIME NOT NULL,
     voided TINYINT(1) NOT NULL DEFAULT 0,
     uuid CHAR(38) NOT NULL UNIQUE,
     CONSTRAINT person_creator FOREIGN KEY (creator) REFERENCES users (user_id)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `ALTER TABLE users ADD CONSTRAINT users_person FOREIGN KEY (person_id) REFERENCES person (person_id)`,
  `CREATE TABLE patient (
     patient_id INT NOT NULL PRIMARY KEY,
     creator INT NULL,
     CONSTRAINT patient_person FOREIGN KEY (patient_id) REFERENCES person (person_id)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE role (role VARCHAR(50) NOT NULL PRIMARY KEY, description VARCHAR(255)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE user_role (
     user_id INT NOT NULL, role VARCHAR(50) NOT NULL,
     PRIMARY KEY (role, user_id),
     CONSTRAINT ur_user FOREIGN KEY (user_id) REFERENCES users (user_id),
     CONSTRAINT ur_role FOREIGN KEY (role) REFERENCES role (role)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE global_property (
     property VARCHAR(255) NOT NULL PRIMARY KEY, property_value TEXT, uuid CHAR(38) NOT NULL
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE encounter (
     encounter_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
     patient_id INT NOT NULL,
     encounter_datetime DATETIME NOT NULL,
     uuid CHAR(38) NOT NULL UNIQUE,
     CONSTRAINT enc_patient FOREIGN KEY (patient_id) REFERENCES patient (patient_id)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE obs (
     obs_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
     encounter_id INT NULL,
     value_numeric DOUBLE NULL,
     value_text TEXT NULL,
     value_complex BLOB NULL,
     uuid CHAR(38) NOT NULL UNIQUE,
     CONSTRAINT obs_enc FOREIGN KEY (encounter_id) REFERENCES encounter (encounter_id) ON DELETE CASCADE
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
  `CREATE TABLE tag_map (obs_id INT NOT NULL, tag VARCHAR(20) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3`,
];

export async function createClinicSchema(db: Queryable): Promise<void> {
  for (const sql of CLINIC_SCHEMA) await execute(db, sql);
  await execute(db, "INSERT INTO users (user_id, username, uuid) VALUES (1, 'admin', 'u-admin')");
  await execute(
    db,
    "INSERT INTO person (person_id, gender, creator, date_created, uuid) VALUES (1, 'M', 1, '2020-01-01', 'p-admin')",
  );
  await execute(db, 'UPDATE users SET person_id = 1 WHERE user_id = 1');
  await execute(db, "INSERT INTO role VALUES ('Provider', 'clinician'), ('Clerk', NULL)");
  await execute(db, "INSERT INTO global_property VALUES ('locale', 'en', 'gp-locale')");
}
