import { randomUUID } from 'node:crypto';
import type { Pool, PoolConnection, Queryable, ResultSetHeader } from '../engine/db/pool.js';
import { execute, queryRows } from '../engine/db/pool.js';

/*
 * An OpenMRS-shaped database made from scratch: the real OpenMRS 2.x column names, keys and
 * foreign keys (from the Reference Application's schema) of the tables a clinic writes when it
 * registers a patient and records vitals, with the hard parts kept: uuid columns (not unique on
 * `users`, as in OpenMRS), creator/changed_by/voided_by pointing at `users`, the users ↔ person
 * cycle, `patient.patient_id` being both the key and a foreign key to `person`, a self-referencing
 * `location` and `obs`, and utf8mb3 everywhere. Foreign keys to tables left out here (form,
 * orders, drug, privilege) are left out with them; their columns stay.
 *
 * Seed metadata uses OpenMRS's own ids and uuids where the Reference Application has them
 * (admin user, locations, CIEL vitals concepts, the Facility Visit type, the Vitals encounter
 * type, the OpenMRS ID identifier type).
 */

const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb3';

const DDL: string[] = [
  `CREATE TABLE users (
     user_id int(11) NOT NULL AUTO_INCREMENT,
     system_id varchar(50) NOT NULL DEFAULT '',
     username varchar(50) DEFAULT NULL,
     password varchar(128) DEFAULT NULL,
     salt varchar(128) DEFAULT NULL,
     secret_question varchar(255) DEFAULT NULL,
     secret_answer varchar(255) DEFAULT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     person_id int(11) NOT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (user_id),
     KEY user_who_changed_user (changed_by),
     KEY user_creator (creator),
     KEY user_who_retired_this_user (retired_by),
     KEY person_id_for_user (person_id),
     CONSTRAINT person_id_for_user FOREIGN KEY (person_id) REFERENCES person (person_id),
     CONSTRAINT user_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_changed_user FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_this_user FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE person (
     person_id int(11) NOT NULL AUTO_INCREMENT,
     gender varchar(50) DEFAULT '',
     birthdate date DEFAULT NULL,
     birthdate_estimated tinyint(1) NOT NULL DEFAULT '0',
     dead tinyint(1) NOT NULL DEFAULT '0',
     death_date datetime DEFAULT NULL,
     cause_of_death int(11) DEFAULT NULL,
     creator int(11) DEFAULT NULL,
     date_created datetime NOT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     deathdate_estimated tinyint(1) NOT NULL DEFAULT '0',
     birthtime time DEFAULT NULL,
     PRIMARY KEY (person_id),
     UNIQUE KEY person_uuid_index (uuid),
     KEY person_birthdate (birthdate),
     KEY person_death_date (death_date),
     KEY person_died_because (cause_of_death),
     KEY user_who_changed_person (changed_by),
     KEY user_who_created_person (creator),
     KEY user_who_voided_person (voided_by),
     CONSTRAINT person_died_because FOREIGN KEY (cause_of_death) REFERENCES concept (concept_id),
     CONSTRAINT user_who_changed_person FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT user_who_created_person FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_voided_person FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE person_name (
     person_name_id int(11) NOT NULL AUTO_INCREMENT,
     preferred tinyint(1) NOT NULL DEFAULT '0',
     person_id int(11) NOT NULL,
     prefix varchar(50) DEFAULT NULL,
     given_name varchar(50) DEFAULT NULL,
     middle_name varchar(50) DEFAULT NULL,
     family_name_prefix varchar(50) DEFAULT NULL,
     family_name varchar(50) DEFAULT NULL,
     family_name2 varchar(50) DEFAULT NULL,
     family_name_suffix varchar(50) DEFAULT NULL,
     degree varchar(50) DEFAULT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (person_name_id),
     UNIQUE KEY person_name_uuid_index (uuid),
     KEY first_name (given_name),
     KEY last_name (family_name),
     KEY middle_name (middle_name),
     KEY family_name2 (family_name2),
     KEY user_who_made_name (creator),
     KEY name_for_person (person_id),
     KEY user_who_voided_name (voided_by),
     CONSTRAINT name_for_person FOREIGN KEY (person_id) REFERENCES person (person_id) ON UPDATE CASCADE,
     CONSTRAINT user_who_made_name FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_voided_name FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE patient (
     patient_id int(11) NOT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     allergy_status varchar(50) NOT NULL DEFAULT 'Unknown',
     PRIMARY KEY (patient_id),
     KEY user_who_changed_pat (changed_by),
     KEY user_who_created_patient (creator),
     KEY user_who_voided_patient (voided_by),
     CONSTRAINT person_id_for_patient FOREIGN KEY (patient_id) REFERENCES person (person_id) ON UPDATE CASCADE,
     CONSTRAINT user_who_changed_pat FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT user_who_created_patient FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_voided_patient FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE patient_identifier_type (
     patient_identifier_type_id int(11) NOT NULL AUTO_INCREMENT,
     name varchar(50) NOT NULL DEFAULT '',
     description text,
     format varchar(255) DEFAULT NULL,
     check_digit tinyint(1) NOT NULL DEFAULT '0',
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     required tinyint(1) NOT NULL DEFAULT '0',
     format_description varchar(255) DEFAULT NULL,
     validator varchar(200) DEFAULT NULL,
     location_behavior varchar(50) DEFAULT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     uniqueness_behavior varchar(50) DEFAULT NULL,
     PRIMARY KEY (patient_identifier_type_id),
     UNIQUE KEY patient_identifier_type_uuid_index (uuid),
     KEY patient_identifier_type_retired_status (retired),
     KEY type_creator (creator),
     KEY user_who_retired_patient_identifier_type (retired_by),
     CONSTRAINT type_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_patient_identifier_type FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE patient_identifier (
     patient_identifier_id int(11) NOT NULL AUTO_INCREMENT,
     patient_id int(11) NOT NULL DEFAULT '0',
     identifier varchar(50) NOT NULL DEFAULT '',
     identifier_type int(11) NOT NULL DEFAULT '0',
     preferred tinyint(1) NOT NULL DEFAULT '0',
     location_id int(11) DEFAULT '0',
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     date_changed datetime DEFAULT NULL,
     changed_by int(11) DEFAULT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (patient_identifier_id),
     UNIQUE KEY patient_identifier_uuid_index (uuid),
     KEY identifier_name (identifier),
     KEY idx_patient_identifier_patient (patient_id),
     KEY identifier_creator (creator),
     KEY defines_identifier_type (identifier_type),
     KEY patient_identifier_ibfk_2 (location_id),
     KEY identifier_voider (voided_by),
     KEY patient_identifier_changed_by (changed_by),
     CONSTRAINT defines_identifier_type FOREIGN KEY (identifier_type) REFERENCES patient_identifier_type (patient_identifier_type_id),
     CONSTRAINT fk_patient_id_patient_identifier FOREIGN KEY (patient_id) REFERENCES patient (patient_id),
     CONSTRAINT identifier_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT identifier_voider FOREIGN KEY (voided_by) REFERENCES users (user_id),
     CONSTRAINT patient_identifier_changed_by FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT patient_identifier_ibfk_2 FOREIGN KEY (location_id) REFERENCES location (location_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE location (
     location_id int(11) NOT NULL AUTO_INCREMENT,
     name varchar(255) NOT NULL DEFAULT '',
     description varchar(255) DEFAULT NULL,
     address1 varchar(255) DEFAULT NULL,
     address2 varchar(255) DEFAULT NULL,
     city_village varchar(255) DEFAULT NULL,
     state_province varchar(255) DEFAULT NULL,
     postal_code varchar(50) DEFAULT NULL,
     country varchar(50) DEFAULT NULL,
     latitude varchar(50) DEFAULT NULL,
     longitude varchar(50) DEFAULT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     county_district varchar(255) DEFAULT NULL,
     address3 varchar(255) DEFAULT NULL,
     address4 varchar(255) DEFAULT NULL,
     address5 varchar(255) DEFAULT NULL,
     address6 varchar(255) DEFAULT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     parent_location int(11) DEFAULT NULL,
     uuid char(38) NOT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     PRIMARY KEY (location_id),
     UNIQUE KEY location_uuid_index (uuid),
     KEY name_of_location (name),
     KEY location_retired_status (retired),
     KEY user_who_created_location (creator),
     KEY user_who_retired_location (retired_by),
     KEY parent_location (parent_location),
     KEY location_changed_by (changed_by),
     CONSTRAINT location_changed_by FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT parent_location FOREIGN KEY (parent_location) REFERENCES location (location_id),
     CONSTRAINT user_who_created_location FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_location FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE concept_datatype (
     concept_datatype_id int(11) NOT NULL AUTO_INCREMENT,
     name varchar(255) NOT NULL DEFAULT '',
     hl7_abbreviation varchar(3) DEFAULT NULL,
     description varchar(255) DEFAULT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (concept_datatype_id),
     UNIQUE KEY concept_datatype_uuid_index (uuid),
     KEY concept_datatype_retired_status (retired),
     KEY concept_datatype_creator (creator),
     KEY user_who_retired_concept_datatype (retired_by),
     KEY concept_datatype_name_index (name),
     CONSTRAINT concept_datatype_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_concept_datatype FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE concept_class (
     concept_class_id int(11) NOT NULL AUTO_INCREMENT,
     name varchar(255) NOT NULL DEFAULT '',
     description varchar(255) DEFAULT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (concept_class_id),
     UNIQUE KEY concept_class_uuid_index (uuid),
     KEY concept_class_retired_status (retired),
     KEY concept_class_creator (creator),
     KEY user_who_retired_concept_class (retired_by),
     KEY concept_class_name_index (name),
     CONSTRAINT concept_class_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_concept_class FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE concept (
     concept_id int(11) NOT NULL AUTO_INCREMENT,
     retired tinyint(1) NOT NULL DEFAULT '0',
     short_name varchar(255) DEFAULT NULL,
     description text,
     form_text text,
     datatype_id int(11) NOT NULL DEFAULT '0',
     class_id int(11) NOT NULL DEFAULT '0',
     is_set tinyint(1) NOT NULL DEFAULT '0',
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     version varchar(50) DEFAULT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (concept_id),
     UNIQUE KEY concept_uuid_index (uuid),
     KEY user_who_changed_concept (changed_by),
     KEY concept_classes (class_id),
     KEY concept_creator (creator),
     KEY concept_datatypes (datatype_id),
     KEY user_who_retired_concept (retired_by),
     CONSTRAINT concept_classes FOREIGN KEY (class_id) REFERENCES concept_class (concept_class_id),
     CONSTRAINT concept_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT concept_datatypes FOREIGN KEY (datatype_id) REFERENCES concept_datatype (concept_datatype_id),
     CONSTRAINT user_who_changed_concept FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_concept FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE concept_name (
     concept_name_id int(11) NOT NULL AUTO_INCREMENT,
     concept_id int(11) DEFAULT NULL,
     name varchar(255) NOT NULL DEFAULT '',
     locale varchar(50) NOT NULL DEFAULT '',
     locale_preferred tinyint(1) DEFAULT '0',
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     concept_name_type varchar(50) DEFAULT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (concept_name_id),
     UNIQUE KEY concept_name_uuid_index (uuid),
     KEY name_of_concept (name),
     KEY name_for_concept (concept_id),
     KEY user_who_created_name (creator),
     KEY user_who_voided_this_name (voided_by),
     CONSTRAINT name_for_concept FOREIGN KEY (concept_id) REFERENCES concept (concept_id),
     CONSTRAINT user_who_created_name FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_voided_this_name FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE visit_type (
     visit_type_id int(11) NOT NULL AUTO_INCREMENT,
     name varchar(255) NOT NULL,
     description varchar(1024) DEFAULT NULL,
     creator int(11) NOT NULL,
     date_created datetime NOT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (visit_type_id),
     UNIQUE KEY uuid (uuid),
     KEY visit_type_creator (creator),
     KEY visit_type_changed_by (changed_by),
     KEY visit_type_retired_by (retired_by),
     CONSTRAINT visit_type_changed_by FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT visit_type_creator FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT visit_type_retired_by FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE visit (
     visit_id int(11) NOT NULL AUTO_INCREMENT,
     patient_id int(11) NOT NULL,
     visit_type_id int(11) NOT NULL,
     date_started datetime NOT NULL,
     date_stopped datetime DEFAULT NULL,
     indication_concept_id int(11) DEFAULT NULL,
     location_id int(11) DEFAULT NULL,
     creator int(11) NOT NULL,
     date_created datetime NOT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (visit_id),
     UNIQUE KEY uuid (uuid),
     KEY visit_patient_index (patient_id),
     KEY visit_type_fk (visit_type_id),
     KEY visit_location_fk (location_id),
     KEY visit_creator_fk (creator),
     KEY visit_voided_by_fk (voided_by),
     KEY visit_changed_by_fk (changed_by),
     KEY visit_indication_concept_fk (indication_concept_id),
     CONSTRAINT visit_changed_by_fk FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT visit_creator_fk FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT visit_indication_concept_fk FOREIGN KEY (indication_concept_id) REFERENCES concept (concept_id),
     CONSTRAINT visit_location_fk FOREIGN KEY (location_id) REFERENCES location (location_id),
     CONSTRAINT visit_patient_fk FOREIGN KEY (patient_id) REFERENCES patient (patient_id),
     CONSTRAINT visit_type_fk FOREIGN KEY (visit_type_id) REFERENCES visit_type (visit_type_id),
     CONSTRAINT visit_voided_by_fk FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE encounter_type (
     encounter_type_id int(11) NOT NULL AUTO_INCREMENT,
     name varchar(50) NOT NULL DEFAULT '',
     description text,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     retired tinyint(1) NOT NULL DEFAULT '0',
     retired_by int(11) DEFAULT NULL,
     date_retired datetime DEFAULT NULL,
     retire_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     view_privilege varchar(255) DEFAULT NULL,
     edit_privilege varchar(255) DEFAULT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     PRIMARY KEY (encounter_type_id),
     UNIQUE KEY encounter_type_unique_name (name),
     UNIQUE KEY encounter_type_uuid_index (uuid),
     KEY encounter_type_retired_status (retired),
     KEY user_who_created_type (creator),
     KEY user_who_retired_encounter_type (retired_by),
     KEY encounter_type_changed_by (changed_by),
     CONSTRAINT encounter_type_changed_by FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT user_who_created_type FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT user_who_retired_encounter_type FOREIGN KEY (retired_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE encounter (
     encounter_id int(11) NOT NULL AUTO_INCREMENT,
     encounter_type int(11) NOT NULL,
     patient_id int(11) NOT NULL DEFAULT '0',
     location_id int(11) DEFAULT NULL,
     form_id int(11) DEFAULT NULL,
     encounter_datetime datetime NOT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     changed_by int(11) DEFAULT NULL,
     date_changed datetime DEFAULT NULL,
     visit_id int(11) DEFAULT NULL,
     uuid char(38) NOT NULL,
     PRIMARY KEY (encounter_id),
     UNIQUE KEY encounter_uuid_index (uuid),
     KEY encounter_datetime_idx (encounter_datetime),
     KEY encounter_ibfk_1 (creator),
     KEY encounter_type_id (encounter_type),
     KEY encounter_form (form_id),
     KEY encounter_location (location_id),
     KEY encounter_patient (patient_id),
     KEY user_who_voided_encounter (voided_by),
     KEY encounter_changed_by (changed_by),
     KEY encounter_visit_id_fk (visit_id),
     CONSTRAINT encounter_changed_by FOREIGN KEY (changed_by) REFERENCES users (user_id),
     CONSTRAINT encounter_ibfk_1 FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT encounter_location FOREIGN KEY (location_id) REFERENCES location (location_id),
     CONSTRAINT encounter_patient FOREIGN KEY (patient_id) REFERENCES patient (patient_id) ON UPDATE CASCADE,
     CONSTRAINT encounter_type_id FOREIGN KEY (encounter_type) REFERENCES encounter_type (encounter_type_id),
     CONSTRAINT encounter_visit_id_fk FOREIGN KEY (visit_id) REFERENCES visit (visit_id),
     CONSTRAINT user_who_voided_encounter FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
  `CREATE TABLE obs (
     obs_id int(11) NOT NULL AUTO_INCREMENT,
     person_id int(11) NOT NULL,
     concept_id int(11) NOT NULL DEFAULT '0',
     encounter_id int(11) DEFAULT NULL,
     order_id int(11) DEFAULT NULL,
     obs_datetime datetime NOT NULL,
     location_id int(11) DEFAULT NULL,
     obs_group_id int(11) DEFAULT NULL,
     accession_number varchar(255) DEFAULT NULL,
     value_group_id int(11) DEFAULT NULL,
     value_coded int(11) DEFAULT NULL,
     value_coded_name_id int(11) DEFAULT NULL,
     value_drug int(11) DEFAULT NULL,
     value_datetime datetime DEFAULT NULL,
     value_numeric double DEFAULT NULL,
     value_modifier varchar(2) DEFAULT NULL,
     value_text text,
     value_complex varchar(255) DEFAULT NULL,
     comments varchar(255) DEFAULT NULL,
     creator int(11) NOT NULL DEFAULT '0',
     date_created datetime NOT NULL,
     voided tinyint(1) NOT NULL DEFAULT '0',
     voided_by int(11) DEFAULT NULL,
     date_voided datetime DEFAULT NULL,
     void_reason varchar(255) DEFAULT NULL,
     uuid char(38) NOT NULL,
     previous_version int(11) DEFAULT NULL,
     form_namespace_and_path varchar(255) DEFAULT NULL,
     PRIMARY KEY (obs_id),
     UNIQUE KEY obs_uuid_index (uuid),
     KEY obs_datetime_idx (obs_datetime),
     KEY obs_concept (concept_id),
     KEY obs_enterer (creator),
     KEY encounter_observations (encounter_id),
     KEY obs_location (location_id),
     KEY obs_grouping_id (obs_group_id),
     KEY obs_order (order_id),
     KEY person_obs (person_id),
     KEY answer_concept (value_coded),
     KEY obs_name_of_coded_value (value_coded_name_id),
     KEY answer_concept_drug (value_drug),
     KEY user_who_voided_obs (voided_by),
     KEY previous_version (previous_version),
     CONSTRAINT answer_concept FOREIGN KEY (value_coded) REFERENCES concept (concept_id),
     CONSTRAINT encounter_observations FOREIGN KEY (encounter_id) REFERENCES encounter (encounter_id),
     CONSTRAINT obs_concept FOREIGN KEY (concept_id) REFERENCES concept (concept_id),
     CONSTRAINT obs_enterer FOREIGN KEY (creator) REFERENCES users (user_id),
     CONSTRAINT obs_grouping_id FOREIGN KEY (obs_group_id) REFERENCES obs (obs_id),
     CONSTRAINT obs_location FOREIGN KEY (location_id) REFERENCES location (location_id),
     CONSTRAINT obs_name_of_coded_value FOREIGN KEY (value_coded_name_id) REFERENCES concept_name (concept_name_id),
     CONSTRAINT person_obs FOREIGN KEY (person_id) REFERENCES person (person_id) ON UPDATE CASCADE,
     CONSTRAINT previous_version FOREIGN KEY (previous_version) REFERENCES obs (obs_id),
     CONSTRAINT user_who_voided_obs FOREIGN KEY (voided_by) REFERENCES users (user_id)
   ) ${TABLE_OPTIONS}`,
];

export const OPENMRS_TABLES = [
  'users',
  'person',
  'person_name',
  'patient',
  'patient_identifier_type',
  'patient_identifier',
  'location',
  'concept_datatype',
  'concept_class',
  'concept',
  'concept_name',
  'visit_type',
  'visit',
  'encounter_type',
  'encounter',
  'obs',
] as const;

export type OpenmrsTable = (typeof OPENMRS_TABLES)[number];

/** The seed's ids: OpenMRS's own (Reference Application) where it has them. */
export const ADMIN_USER_ID = 1;
export const DAEMON_USER_ID = 2;
export const LOCATIONS = {
  unknown: 1,
  amaniHospital: 8,
  outpatientClinic: 7,
  registrationDesk: 5,
  inpatientWard: 6,
  butaroHealthCentre: 9,
  rwinkwavuHealthCentre: 10,
} as const;
export const VISIT_TYPE_FACILITY = 1;
export const ENCOUNTER_TYPE_VITALS = 2;
export const IDENTIFIER_TYPE_OPENMRS_ID = 3;

/** CIEL concepts of the vitals form, by their concept ids in every OpenMRS that loads CIEL. */
export const CONCEPTS = {
  weight: 5089,
  height: 5090,
  temperature: 5088,
  pulse: 5087,
  systolic: 5085,
  diastolic: 5086,
  respiratoryRate: 5242,
  oxygenSaturation: 5092,
  encounterNote: 162169,
} as const;

const DATATYPE = { numeric: 1, coded: 2, text: 3, na: 4 } as const;
const CLASS = { test: 1, misc: 11 } as const;

interface ConceptSeed {
  id: number;
  nameId: number;
  name: string;
  datatype: number;
  cls: number;
}

const CONCEPT_SEED: ConceptSeed[] = [
  {
    id: CONCEPTS.weight,
    nameId: 2191,
    name: 'Weight (kg)',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  {
    id: CONCEPTS.height,
    nameId: 2194,
    name: 'Height (cm)',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  {
    id: CONCEPTS.temperature,
    nameId: 2190,
    name: 'Temperature (C)',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  { id: CONCEPTS.pulse, nameId: 2188, name: 'Pulse', datatype: DATATYPE.numeric, cls: CLASS.test },
  {
    id: CONCEPTS.systolic,
    nameId: 2186,
    name: 'Systolic blood pressure',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  {
    id: CONCEPTS.diastolic,
    nameId: 2187,
    name: 'Diastolic blood pressure',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  {
    id: CONCEPTS.respiratoryRate,
    nameId: 2347,
    name: 'Respiratory rate',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  {
    id: CONCEPTS.oxygenSaturation,
    nameId: 2196,
    name: 'Blood oxygen saturation',
    datatype: DATATYPE.numeric,
    cls: CLASS.test,
  },
  {
    id: CONCEPTS.encounterNote,
    nameId: 124962,
    name: 'Text of encounter note',
    datatype: DATATYPE.text,
    cls: CLASS.misc,
  },
];

/** CIEL's uuid convention: the id padded with A's (concepts) or B's (names) to 36 characters. */
const cielUuid = (id: number, pad: 'A' | 'B') => String(id).padEnd(36, pad);

export interface ShapeSummary {
  tables: number;
  users: number;
  locations: number;
  concepts: number;
}

/**
 * Creates the OpenMRS tables in the (empty) database `db` is connected to and seeds the
 * metadata, the way OpenMRS's own set-up does it: with foreign-key checks off for the cycles.
 */
export async function createOpenmrsShape(pool: Pool): Promise<ShapeSummary> {
  const conn = await pool.getConnection();
  try {
    await execute(conn, 'SET FOREIGN_KEY_CHECKS = 0');
    for (const sql of DDL) await execute(conn, sql);
    await conn.beginTransaction();
    await seedMetadata(conn);
    await conn.commit();
  } catch (e) {
    await conn.rollback().catch(() => undefined);
    throw e;
  } finally {
    await execute(conn, 'SET FOREIGN_KEY_CHECKS = 1').catch(() => undefined);
    conn.release();
  }
  return {
    tables: DDL.length,
    users: 2,
    locations: Object.keys(LOCATIONS).length,
    concepts: CONCEPT_SEED.length,
  };
}

async function seedMetadata(db: Queryable): Promise<void> {
  const seeded = '2016-08-24 09:37:49';
  // The users ↔ person cycle: admin is person 1, and person 1 was created by admin.
  await execute(
    db,
    `INSERT INTO person (person_id, gender, creator, date_created, uuid)
     VALUES (1, 'M', NULL, '2005-01-01 00:00:00', '1296b0dc-440a-11e6-a65c-00e04c680037')`,
  );
  await execute(
    db,
    `INSERT INTO users (user_id, system_id, username, creator, date_created, person_id, uuid) VALUES
       (1, 'admin', '', 1, '2005-01-01 00:00:00', 1, '1c3db49d-440a-11e6-a65c-00e04c680037'),
       (2, 'daemon', 'daemon', 1, '2010-04-26 13:25:00', 1, 'A4F30A1B-5EB9-11DF-A648-37A07F9C90FB')`,
  );
  await execute(
    db,
    `INSERT INTO person_name (person_name_id, preferred, person_id, given_name, family_name, creator, date_created, uuid)
     VALUES (1, 1, 1, 'Super', 'User', 1, '2005-01-01 00:00:00', ?)`,
    [randomUUID()],
  );
  await execute(
    db,
    `INSERT INTO location (location_id, name, creator, date_created, parent_location, uuid) VALUES
       (1, 'Unknown Location', 1, '2005-09-22 00:00:00', NULL, '8d6c993e-c2cc-11de-8d13-0010c6dffd0f'),
       (8, 'Amani Hospital', 2, '2013-08-02 01:46:15', NULL, 'aff27d58-a15c-49a6-9beb-d30dcfc0c66e'),
       (5, 'Registration Desk', 2, '2013-08-02 01:49:07', 8, '6351fcf4-e311-4a19-90f9-35667d99a8af'),
       (6, 'Inpatient Ward', 2, '2013-08-02 01:47:29', 8, 'b1a8b05e-3542-4037-bbd3-998ee9c40574'),
       (7, 'Outpatient Clinic', 2, '2013-08-02 01:47:12', 8, '58c57d25-8d39-41ab-8422-108a0c277d98'),
       (9, 'Butaro Health Centre', 2, '2013-08-02 01:48:20', NULL, 'c0a1b2c3-0b07-4a2e-9c1d-b47a50000009'),
       (10, 'Rwinkwavu Health Centre', 2, '2013-08-02 01:48:41', NULL, 'c0a1b2c3-0b07-4a2e-9c1d-b47a50000010')`,
  );
  await execute(
    db,
    `INSERT INTO concept_datatype (concept_datatype_id, name, hl7_abbreviation, description, creator, date_created, uuid) VALUES
       (1, 'Numeric', 'NM', 'Numeric value, including integer or float (e.g., creatinine, weight)', 1, '2004-02-02 00:00:00', '8d4a4488-c2cc-11de-8d13-0010c6dffd0f'),
       (2, 'Coded', 'CWE', 'Value determined by term dictionary lookup (i.e., term identifier)', 1, '2004-02-02 00:00:00', '8d4a48b6-c2cc-11de-8d13-0010c6dffd0f'),
       (3, 'Text', 'ST', 'Free text', 1, '2004-02-02 00:00:00', '8d4a4ab4-c2cc-11de-8d13-0010c6dffd0f'),
       (4, 'N/A', 'ZZ', 'Not associated with a datatype (e.g., term answers, sets)', 1, '2004-02-02 00:00:00', '8d4a4c94-c2cc-11de-8d13-0010c6dffd0f')`,
  );
  await execute(
    db,
    `INSERT INTO concept_class (concept_class_id, name, description, creator, date_created, uuid) VALUES
       (1, 'Test', 'Acq. during patient encounter (vitals, labs, etc.)', 1, '2004-02-02 00:00:00', '8d4907b2-c2cc-11de-8d13-0010c6dffd0f'),
       (11, 'Misc', 'Terms which don''t fit other categories', 1, '2004-03-02 00:00:00', '8d492774-c2cc-11de-8d13-0010c6dffd0f')`,
  );
  for (const c of CONCEPT_SEED) {
    await execute(
      db,
      `INSERT INTO concept (concept_id, datatype_id, class_id, creator, date_created, version, uuid)
       VALUES (?, ?, ?, 1, '2004-08-12 00:00:00', '', ?)`,
      [c.id, c.datatype, c.cls, cielUuid(c.id, 'A')],
    );
    await execute(
      db,
      `INSERT INTO concept_name (concept_name_id, concept_id, name, locale, locale_preferred, creator, date_created, concept_name_type, uuid)
       VALUES (?, ?, ?, 'en', 1, 1, '2004-08-12 00:00:00', 'FULLY_SPECIFIED', ?)`,
      [c.nameId, c.id, c.name, cielUuid(c.nameId, 'B')],
    );
  }
  await execute(
    db,
    `INSERT INTO visit_type (visit_type_id, name, description, creator, date_created, uuid)
     VALUES (1, 'Facility Visit', 'Patient visits the clinic/hospital (as opposed to a home visit, or telephone contact)', 2, '2013-08-02 02:39:43', '7b0f5697-27e3-40c4-8bae-f4049abfb4ed')`,
  );
  await execute(
    db,
    `INSERT INTO encounter_type (encounter_type_id, name, description, creator, date_created, uuid)
     VALUES (2, 'Vitals', 'For capturing vital signs', 2, '2013-08-12 14:08:05', '67a71486-1a54-468f-ac3e-7091a9a79584')`,
  );
  await execute(
    db,
    `INSERT INTO patient_identifier_type (patient_identifier_type_id, name, description, check_digit, creator, date_created, required, validator, uuid)
     VALUES (3, 'OpenMRS ID', 'OpenMRS patient identifier, with check-digit', 0, 2, ?, 1,
             'org.openmrs.module.idgen.validator.LuhnMod30IdentifierValidator', '05a29f94-c0ed-11e2-94be-8c13b969e334')`,
    [seeded],
  );
}

// ---------------------------------------------------------------------------------------------
// Patients, the way OpenMRS writes them

export interface PatientName {
  givenName: string;
  familyName: string;
  gender: 'M' | 'F';
}

export interface AddPatientsOptions {
  count: number;
  /** obs in each patient's vitals encounter (default 5); the vitals form's 9 concepts cycle */
  obsPerEncounter?: number;
  /** where the visit and encounter happen (default the Outpatient Clinic) */
  locationId?: number;
  /** the user who enters everything (default admin) */
  creator?: number;
  /** names to use, in order, before generated ones */
  names?: PatientName[];
  /**
   * the idgen sequence number of the first OpenMRS ID (default: next after the highest
   * patient_identifier_id); each server draws from its own range, as idgen's per-site pools do
   */
  firstIdentifier?: number;
  /** makes names, ages and values repeatable (default: different every call) */
  seed?: number;
  /** the clock of the clinic (default now) */
  at?: Date;
}

export interface AddedPatient {
  personId: number;
  personUuid: string;
  personNameId: number;
  patientIdentifierId: number;
  identifier: string;
  givenName: string;
  familyName: string;
  gender: 'M' | 'F';
  birthdate: string;
  visitId: number;
  encounterId: number;
  obsIds: number[];
}

export interface AddedPatients {
  patients: AddedPatient[];
  /** rows inserted, by table */
  rows: Record<OpenmrsTable, number>;
  /** rows inserted in all */
  totalRows: number;
  transactions: number;
}

/**
 * Registers patients as an OpenMRS clinic does: one transaction registers the patient (person,
 * preferred name, patient, OpenMRS ID), a second starts a facility visit and saves a vitals
 * encounter with its obs. Every row is a single-row INSERT, as Hibernate writes them.
 */
export async function addPatients(pool: Pool, opts: AddPatientsOptions): Promise<AddedPatients> {
  const random = mulberry32(opts.seed ?? Math.floor(Math.random() * 2 ** 32));
  const obsPerEncounter = opts.obsPerEncounter ?? 5;
  const locationId = opts.locationId ?? LOCATIONS.outpatientClinic;
  const creator = opts.creator ?? ADMIN_USER_ID;
  const clock = opts.at ?? new Date();
  const rows = Object.fromEntries(OPENMRS_TABLES.map((t) => [t, 0])) as Record<
    OpenmrsTable,
    number
  >;
  const patients: AddedPatient[] = [];
  let transactions = 0;

  const conn = await pool.getConnection();
  try {
    const [last] = await queryRows(
      conn,
      'SELECT COALESCE(MAX(patient_identifier_id), 0) AS n FROM patient_identifier',
    );
    // 810000 is "10000" in base 30: identifiers run 10000X, 10001X, … like a fresh idgen's.
    let nextIdentifier = opts.firstIdentifier ?? 810_000 + Number(last!.n);

    const insert = async (table: OpenmrsTable, values: Record<string, unknown>) => {
      const cols = Object.keys(values);
      const res = await execute(
        conn,
        `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
        Object.values(values),
      );
      rows[table]++;
      return res.insertId;
    };

    for (let i = 0; i < opts.count; i++) {
      // Each patient a few minutes after the previous one, as at a registration desk.
      const registeredAt = new Date(clock.getTime() - (opts.count - i) * 4 * 60_000);
      const now = sqlDateTime(registeredAt);
      const name = opts.names?.[i] ?? randomName(random);
      const birthdate = randomBirthdate(random, registeredAt);
      const personUuid = randomUUID();
      const identifier = openmrsId(nextIdentifier++);

      const registration = await inTransaction(conn, async () => {
        const personId = await insert('person', {
          gender: name.gender,
          birthdate: birthdate.date,
          birthdate_estimated: birthdate.estimated ? 1 : 0,
          dead: 0,
          creator,
          date_created: now,
          voided: 0,
          uuid: personUuid,
          deathdate_estimated: 0,
        });
        const personNameId = await insert('person_name', {
          preferred: 1,
          person_id: personId,
          given_name: name.givenName,
          family_name: name.familyName,
          creator,
          date_created: now,
          voided: 0,
          uuid: randomUUID(),
        });
        await insert('patient', {
          patient_id: personId,
          creator,
          date_created: now,
          voided: 0,
          allergy_status: 'Unknown',
        });
        const patientIdentifierId = await insert('patient_identifier', {
          patient_id: personId,
          identifier,
          identifier_type: IDENTIFIER_TYPE_OPENMRS_ID,
          preferred: 1,
          location_id: locationId,
          creator,
          date_created: now,
          voided: 0,
          uuid: randomUUID(),
        });
        return { personId, personNameId, patientIdentifierId };
      });
      transactions++;

      const seenAt = sqlDateTime(new Date(registeredAt.getTime() + 60_000));
      const visitAndVitals = await inTransaction(conn, async () => {
        const visitId = await insert('visit', {
          patient_id: registration.personId,
          visit_type_id: VISIT_TYPE_FACILITY,
          date_started: now,
          location_id: locationId,
          creator,
          date_created: now,
          voided: 0,
          uuid: randomUUID(),
        });
        const encounterId = await insert('encounter', {
          encounter_type: ENCOUNTER_TYPE_VITALS,
          patient_id: registration.personId,
          location_id: locationId,
          encounter_datetime: seenAt,
          creator,
          date_created: seenAt,
          voided: 0,
          visit_id: visitId,
          uuid: randomUUID(),
        });
        const obsIds: number[] = [];
        for (let k = 0; k < obsPerEncounter; k++) {
          const concept = CONCEPT_SEED[k % CONCEPT_SEED.length]!;
          const value = obsValue(concept.id, random, birthdate.ageYears);
          obsIds.push(
            await insert('obs', {
              person_id: registration.personId,
              concept_id: concept.id,
              encounter_id: encounterId,
              obs_datetime: seenAt,
              location_id: locationId,
              value_numeric: typeof value === 'number' ? value : null,
              value_text: typeof value === 'string' ? value : null,
              creator,
              date_created: seenAt,
              voided: 0,
              uuid: randomUUID(),
            }),
          );
        }
        return { visitId, encounterId, obsIds };
      });
      transactions++;

      patients.push({
        ...registration,
        ...visitAndVitals,
        personUuid,
        identifier,
        givenName: name.givenName,
        familyName: name.familyName,
        gender: name.gender,
        birthdate: birthdate.date,
      });
    }
  } finally {
    conn.release();
  }
  const totalRows = Object.values(rows).reduce((a, b) => a + b, 0);
  return { patients, rows, totalRows, transactions };
}

/** A data clerk fixes a misspelt name: OpenMRS edits the name row in place. */
export async function correctName(
  pool: Pool,
  personNameId: number,
  name: { givenName?: string; middleName?: string; familyName?: string },
  changedBy = ADMIN_USER_ID,
): Promise<void> {
  const sets: string[] = [];
  const params: unknown[] = [];
  if (name.givenName !== undefined) {
    sets.push('given_name = ?');
    params.push(name.givenName);
  }
  if (name.middleName !== undefined) {
    sets.push('middle_name = ?');
    params.push(name.middleName);
  }
  if (name.familyName !== undefined) {
    sets.push('family_name = ?');
    params.push(name.familyName);
  }
  await execute(
    pool,
    `UPDATE person_name SET ${[...sets, 'changed_by = ?', 'date_changed = ?'].join(', ')} WHERE person_name_id = ?`,
    [...params, changedBy, sqlDateTime(new Date()), personNameId],
  );
}

/** An obs entered in error is voided, never deleted: the void group changes together. */
export async function voidObs(
  pool: Pool,
  obsId: number,
  reason: string,
  voidedBy = ADMIN_USER_ID,
): Promise<void> {
  const res: ResultSetHeader = await execute(
    pool,
    'UPDATE obs SET voided = 1, voided_by = ?, date_voided = ?, void_reason = ? WHERE obs_id = ? AND voided = 0',
    [voidedBy, sqlDateTime(new Date()), reason, obsId],
  );
  if (res.affectedRows !== 1) throw new Error(`obs ${obsId} was not there to void`);
}

/** The concept's name as the vitals form shows it. */
export function conceptName(conceptId: number): string {
  return CONCEPT_SEED.find((c) => c.id === conceptId)?.name ?? `concept ${conceptId}`;
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function inTransaction<T>(conn: PoolConnection, fn: () => Promise<T>): Promise<T> {
  await conn.beginTransaction();
  try {
    const result = await fn();
    await conn.commit();
    return result;
  } catch (e) {
    await conn.rollback().catch(() => undefined);
    throw e;
  }
}

/** 'YYYY-MM-DD HH:MM:SS' in UTC, the sessions' time zone. */
export function sqlDateTime(d: Date): string {
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

const OPENMRS_ID_CHARS = '0123456789ACDEFGHJKLMNPRTUVWXY';

/**
 * An "OpenMRS ID" as the idgen module makes it: the sequence number in base 30 (its alphabet
 * leaves out letters that look like digits) followed by a Luhn mod-30 check character.
 */
export function openmrsId(sequence: number): string {
  const n = OPENMRS_ID_CHARS.length;
  let base = '';
  for (let v = sequence; v > 0; v = Math.floor(v / n)) base = OPENMRS_ID_CHARS[v % n] + base;
  base = base.padStart(5, '0');
  let factor = 2;
  let sum = 0;
  for (let i = base.length - 1; i >= 0; i--) {
    let addend = factor * OPENMRS_ID_CHARS.indexOf(base[i]!);
    factor = factor === 2 ? 1 : 2;
    addend = Math.floor(addend / n) + (addend % n);
    sum += addend;
  }
  return base + OPENMRS_ID_CHARS[(n - (sum % n)) % n];
}

const GIVEN: Record<'M' | 'F', string[]> = {
  M: ['Jean', 'Emmanuel', 'Patrick', 'Innocent', 'Olivier', 'Théoneste', 'Eric', 'Joseph', 'Moïse'],
  F: [
    'Aline',
    'Claudine',
    'Chantal',
    'Grace',
    'Josiane',
    'Espérance',
    'Marie',
    'Solange',
    'Béatrice',
  ],
};
const FAMILY = [
  'Uwimana',
  'Mukamana',
  'Niyonzima',
  'Habimana',
  'Nshimiyimana',
  'Ingabire',
  'Mugisha',
  'Uwase',
  'Banda',
  'Phiri',
  'Pierre',
  'Joseph',
];

function randomName(random: () => number): PatientName {
  const gender = random() < 0.5 ? 'F' : 'M';
  return { givenName: pick(GIVEN[gender], random), familyName: pick(FAMILY, random), gender };
}

function randomBirthdate(
  random: () => number,
  at: Date,
): { date: string; estimated: boolean; ageYears: number } {
  const ageDays = Math.floor(random() * 80 * 365.25);
  const d = new Date(at.getTime() - ageDays * 86_400_000);
  return {
    date: d.toISOString().slice(0, 10),
    estimated: random() < 0.15,
    ageYears: ageDays / 365.25,
  };
}

function obsValue(conceptId: number, random: () => number, ageYears: number): number | string {
  const between = (lo: number, hi: number, decimals = 0) =>
    Number((lo + random() * (hi - lo)).toFixed(decimals));
  const child = ageYears < 12;
  switch (conceptId) {
    case CONCEPTS.weight:
      return child ? between(3, 10 + ageYears * 3, 1) : between(45, 90, 1);
    case CONCEPTS.height:
      return child ? between(50, 80 + ageYears * 6) : between(150, 185);
    case CONCEPTS.temperature:
      return between(36, 39.5, 1);
    case CONCEPTS.pulse:
      return child ? between(80, 130) : between(55, 110);
    case CONCEPTS.systolic:
      return between(95, 160);
    case CONCEPTS.diastolic:
      return between(55, 100);
    case CONCEPTS.respiratoryRate:
      return child ? between(20, 40) : between(12, 24);
    case CONCEPTS.oxygenSaturation:
      return between(90, 100);
    default:
      return pick(
        [
          'Cough for three days, no fever at home.',
          'Follow-up visit; feels better.',
          'Headache and fatigue since last week.',
        ],
        random,
      );
  }
}

function pick<T>(list: readonly T[], random: () => number): T {
  return list[Math.floor(random() * list.length)]!;
}

/** A small seeded generator (mulberry32): repeatable names and values for benchmarks. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
