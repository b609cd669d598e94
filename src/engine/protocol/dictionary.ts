/*
 * The preset dictionary of protocol v2 (docs/protocol.md, "Compression"). Both ends prime deflate
 * with it, so a batch's first table declarations and tags cost a few bytes instead of their full
 * spelling: on a 1 kbit/s link a 200-row batch used to spend about a tenth of its bytes on them.
 *
 * It is part of the protocol: the same bytes at every node speaking v2, never edited (a different
 * dictionary is a new protocol version; test/unit/protocol.test.ts pins its checksum). It holds
 * the declarations ClinicSync writes for the OpenMRS 2.x tables clinics change most (columns as in
 * the reference application's schema, identity column first, the local key left out where rows
 * are identified by uuid), then the format's fixed vocabulary, last because deflate reaches the
 * end of the dictionary with the shortest distances.
 */

/** OpenMRS 2.x tables and their carried columns: the identity column first. */
const OPENMRS_TABLES: readonly (readonly [table: string, key: string, columns: string])[] = [
  [
    'concept_name',
    'uuid',
    'concept_id name locale locale_preferred creator date_created concept_name_type voided voided_by date_voided void_reason',
  ],
  [
    'concept',
    'uuid',
    'retired short_name description form_text datatype_id class_id is_set creator date_created version changed_by date_changed retired_by date_retired retire_reason',
  ],
  [
    'location',
    'uuid',
    'name description address1 address2 city_village state_province postal_code country latitude longitude creator date_created county_district address3 address4 address5 address6 retired retired_by date_retired retire_reason parent_location changed_by date_changed',
  ],
  [
    'users',
    'uuid',
    'system_id username password salt secret_question secret_answer creator date_created changed_by date_changed person_id retired retired_by date_retired retire_reason',
  ],
  [
    'provider',
    'uuid',
    'person_id name identifier creator date_created changed_by date_changed retired retired_by date_retired retire_reason provider_role_id',
  ],
  [
    'relationship',
    'uuid',
    'person_a relationship person_b start_date end_date creator date_created date_changed changed_by voided voided_by date_voided void_reason',
  ],
  [
    'note',
    'uuid',
    'note_type patient_id obs_id encounter_id text priority parent creator date_created changed_by date_changed',
  ],
  [
    'allergy',
    'uuid',
    'patient_id severity_concept_id coded_allergen non_coded_allergen allergen_type comment creator date_created changed_by date_changed voided voided_by date_voided void_reason',
  ],
  [
    'conditions',
    'uuid',
    'previous_condition_id patient_id status concept_id condition_non_coded onset_date additional_detail end_date end_reason creator date_created voided voided_by date_voided void_reason',
  ],
  [
    'test_order',
    'order_id',
    'specimen_source laterality clinical_history frequency number_of_repeats',
  ],
  [
    'drug_order',
    'order_id',
    'drug_inventory_id dose as_needed dosing_type quantity as_needed_condition num_refills dosing_instructions duration duration_units quantity_units route dose_units frequency brand_name dispense_as_written drug_non_coded',
  ],
  [
    'orders',
    'uuid',
    'order_type_id concept_id orderer encounter_id instructions date_activated auto_expire_date date_stopped order_reason order_reason_non_coded creator date_created voided voided_by date_voided void_reason patient_id accession_number urgency order_number previous_order_id order_action comment_to_fulfiller care_setting scheduled_date order_group_id sort_weight',
  ],
  [
    'patient_state',
    'uuid',
    'patient_program_id state start_date end_date creator date_created changed_by date_changed voided voided_by date_voided void_reason',
  ],
  [
    'patient_program',
    'uuid',
    'patient_id program_id date_enrolled date_completed location_id outcome_concept_id creator date_created changed_by date_changed voided voided_by date_voided void_reason',
  ],
  [
    'visit_attribute',
    'uuid',
    'visit_id attribute_type_id value_reference creator date_created changed_by date_changed voided voided_by date_voided void_reason',
  ],
  [
    'person_attribute',
    'uuid',
    'person_id value person_attribute_type_id creator date_created changed_by date_changed voided voided_by date_voided void_reason',
  ],
  [
    'person_address',
    'uuid',
    'person_id preferred address1 address2 city_village state_province postal_code country latitude longitude start_date end_date creator date_created voided voided_by date_voided void_reason county_district address3 address4 address5 address6 date_changed changed_by',
  ],
  [
    'encounter_provider',
    'uuid',
    'encounter_id provider_id encounter_role_id creator date_created changed_by date_changed voided date_voided voided_by void_reason',
  ],
  [
    'person',
    'uuid',
    'gender birthdate birthdate_estimated dead death_date cause_of_death creator date_created changed_by date_changed voided voided_by date_voided void_reason deathdate_estimated birthtime',
  ],
  [
    'person_name',
    'uuid',
    'preferred person_id prefix given_name middle_name family_name_prefix family_name family_name2 family_name_suffix degree creator date_created voided voided_by date_voided void_reason changed_by date_changed',
  ],
  [
    'patient',
    'patient_id',
    'creator date_created changed_by date_changed voided voided_by date_voided void_reason allergy_status',
  ],
  [
    'patient_identifier',
    'uuid',
    'patient_id identifier identifier_type preferred location_id creator date_created date_changed changed_by voided voided_by date_voided void_reason',
  ],
  [
    'visit',
    'uuid',
    'patient_id visit_type_id date_started date_stopped indication_concept_id location_id creator date_created changed_by date_changed voided voided_by date_voided void_reason',
  ],
  [
    'encounter',
    'uuid',
    'encounter_type patient_id location_id form_id encounter_datetime creator date_created voided voided_by date_voided void_reason changed_by date_changed visit_id',
  ],
  [
    'obs',
    'uuid',
    'person_id concept_id encounter_id order_id obs_datetime location_id obs_group_id accession_number value_group_id value_coded value_coded_name_id value_drug value_datetime value_numeric value_modifier value_text value_complex comments creator date_created voided voided_by date_voided void_reason previous_version form_namespace_and_path',
  ],
];

/** The tags and attributes every batch spells, most frequent last. */
const VOCABULARY = [
  '<?xml version="1.0" encoding="UTF-8"?>\n<cs v="2" from="',
  '" inc="',
  '" name="',
  '" to="',
  '" t="',
  '" h="',
  '" more="0">\n<o>',
  '</o>\n<vv>0:',
  '</vv>\n<fx>',
  '</fx>\n',
  '</cs>\n',
  '<x h="1ekg 1"/>\n',
  '<d h="1" k="\\U"/>\n',
  '<u h="1ekg" k="\\U" c="" b="" p="=">\\N\t',
  '\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t0\t1\t',
  '</i>\n</r>\n<r t="',
  '">\n<i s="1" h="1ekg">\\U',
  '</i>\n<i h="1">\\U',
];

function buildDictionary(): Buffer {
  const declarations = OPENMRS_TABLES.map(
    ([table, key, columns]) => `<t n="${table}" f="" k="${key}" c="${key} ${columns}"/>\n`,
  );
  return Buffer.from(declarations.join('') + VOCABULARY.join(''), 'utf8');
}

/** The v2 preset dictionary (its zlib id, the Adler-32 of these bytes, is in every v2 stream). */
export const DICTIONARY_V2: Buffer = buildDictionary();
