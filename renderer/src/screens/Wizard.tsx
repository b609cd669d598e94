import {
  useEffect,
  useRef,
  useState,
  type Dispatch,
  type FormEvent,
  type ReactNode,
  type SetStateAction,
} from 'react';
import { useTranslation } from 'react-i18next';
import type {
  ApiStatus,
  CloneProgress,
  DatabaseTest,
  PairingCode,
  ParentCheck,
  SetupProgress,
  SetupState,
} from '../../../src/api/types.js';
import {
  DEFAULT_PARENT_PORT,
  EMPTY_DB,
  dbFields,
  dbUrl,
  parentUrl,
  type DbFields,
} from '../addresses.js';
import { ErrorNotice } from '../components/ErrorNotice.js';
import { useApi, useFormats } from '../context.js';

/*
 * The setup wizard (issue "The React window", item 2). A main server: role, database, name,
 * pairing codes. A clinic: role, database, main server (address, name, pairing code, security
 * code), copy, schedule. Each step is kept in the home (saveSetupProgress) so a person can close
 * the window and come back; the password and the pairing code are asked again, never kept.
 */

type Role = 'root' | 'child';
export type Step =
  'role' | 'database' | 'name' | 'pairing' | 'parent' | 'clone' | 'schedule' | 'done';

const STEPS: Record<Role, Step[]> = {
  root: ['role', 'database', 'name', 'pairing', 'done'],
  child: ['role', 'database', 'parent', 'clone', 'schedule', 'done'],
};

/** Steps that need the node made: a wizard resumed there while no node exists goes back. */
const AFTER_NODE: Step[] = ['pairing', 'schedule', 'done'];

const NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,39}$/u;

const INTERVALS = [300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
const DEFAULT_INTERVAL = 600;

function isStep(s: string): s is Step {
  return ['role', 'database', 'name', 'pairing', 'parent', 'clone', 'schedule', 'done'].includes(s);
}

/** Where to resume: the saved step where it still makes sense. */
export function resumeStep(setup: SetupState): Step {
  const p = setup.progress;
  const role = setup.node?.role ?? p?.role ?? null;
  if (!role) return 'role';
  const saved: Step = p && isStep(p.step) ? p.step : 'role';
  const clone = setup.clone;
  if (setup.node) {
    if (AFTER_NODE.includes(saved)) return saved;
    return role === 'root' ? 'pairing' : 'schedule';
  }
  if (AFTER_NODE.includes(saved)) return 'role';
  if (role === 'child' && saved === 'clone' && !(clone && clone.phase !== 'failed')) {
    // The pairing code is asked again, on the main server's step.
    return 'parent';
  }
  return saved;
}

export function Wizard({
  setup,
  status,
  clone,
  onFinished,
}: {
  setup: SetupState;
  status: ApiStatus | null;
  clone: CloneProgress | null;
  onFinished: (s: SetupState) => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const saved = setup.progress;
  const [role, setRole] = useState<Role | null>(setup.node?.role ?? saved?.role ?? null);
  const [step, setStep] = useState<Step>(() => resumeStep(setup));
  const [db, setDb] = useState<DbFields>(
    () => (saved?.dbUrl ? dbFields(saved.dbUrl) : null) ?? EMPTY_DB,
  );
  const [name, setName] = useState(setup.node?.name ?? saved?.name ?? '');
  const [parentTyped, setParentTyped] = useState(saved?.parentUrl ?? '');
  // What the database test found, for the steps after it.
  const [dbTest, setDbTest] = useState<DatabaseTest | null>(null);
  // The pairing code lives only in memory, between the main server's step and the copy.
  const [code, setCode] = useState('');
  // The main server's certificate the person confirmed (HTTPS), for the copy to trust only it.
  const [fingerprint, setFingerprint] = useState<string | null>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);

  const steps = role ? STEPS[role] : STEPS.child.slice(0, 1);
  const index = Math.max(0, steps.indexOf(step));

  // Every step change is kept, without the password and the pairing code.
  const keep = (next: Step, r: Role | null = role) => {
    const progress: SetupProgress = {
      step: next,
      role: r,
      dbUrl: dbUrl(db, false),
      name: name || null,
      parentUrl: parentUrl(parentTyped),
    };
    api.saveSetupProgress(progress).catch(() => undefined);
  };
  const go = (next: Step, r: Role | null = role) => {
    keep(next, r);
    setStep(next);
  };

  // The heading of each step takes the focus, so a keyboard or screen reader user starts there.
  useEffect(() => headingRef.current?.focus(), [step]);

  const finish = async () => {
    onFinished(await api.saveSetupProgress(null));
  };

  const heading = (text: string) => (
    <h2 ref={headingRef} tabIndex={-1}>
      {text}
    </h2>
  );

  let body: ReactNode;
  switch (step) {
    case 'role':
      body = (
        <RoleStep
          heading={heading(t('wizard.role.heading'))}
          role={role}
          onChoose={(r) => {
            setRole(r);
            go('database', r);
          }}
        />
      );
      break;
    case 'database':
      body = (
        <DatabaseStep
          heading={heading(t('wizard.db.heading'))}
          role={role ?? 'child'}
          db={db}
          setDb={setDb}
          onBack={() => go('role')}
          onNext={(r) => {
            setDbTest(r);
            go(role === 'root' ? 'name' : 'parent');
          }}
        />
      );
      break;
    case 'name':
      body = (
        <NameStep
          heading={heading(t('wizard.name.heading'))}
          openmrs={dbTest?.openmrs === true}
          name={name}
          setName={setName}
          db={db}
          setDb={setDb}
          onBack={() => go('database')}
          onMade={() => go('pairing')}
        />
      );
      break;
    case 'pairing':
      body = (
        <PairingStep
          heading={heading(t('wizard.pairing.heading'))}
          ready={status !== null}
          onNext={() => go('done')}
        />
      );
      break;
    case 'parent':
      body = (
        <ParentStep
          heading={heading(t('wizard.parent.heading'))}
          typed={parentTyped}
          setTyped={setParentTyped}
          name={name}
          setName={setName}
          code={code}
          onBack={() => go('database')}
          onNext={(typedCode, confirmed) => {
            setCode(typedCode);
            setFingerprint(confirmed);
            go('clone');
          }}
        />
      );
      break;
    case 'clone':
      body = (
        <CloneStep
          heading={heading(t('wizard.clone.heading'))}
          db={db}
          setDb={setDb}
          parent={parentUrl(parentTyped) ?? ''}
          code={code}
          fingerprint={fingerprint}
          name={name}
          clone={clone}
          nodeReady={setup.node !== null && status !== null}
          onBack={() => go('parent')}
          onDone={() => go('schedule')}
        />
      );
      break;
    case 'schedule':
      body = (
        <ScheduleStep
          heading={heading(t('wizard.schedule.heading'))}
          status={status}
          onNext={() => go('done')}
        />
      );
      break;
    case 'done':
      body = (
        <section className="step">
          {heading(t('wizard.done.heading'))}
          <p className="lead">
            {role === 'root'
              ? t('wizard.done.root', { name: setup.node?.name ?? name })
              : t('wizard.done.child', { name: setup.node?.name ?? name })}
          </p>
          {role !== 'root' && status?.identifierWarning && (
            <p className="notice notice-warning" data-testid="identifier-notice">
              {t('wizard.done.identifiers')}
            </p>
          )}
          <div className="actions">
            <button type="button" className="primary" onClick={() => void finish()}>
              {t('wizard.finish')}
            </button>
          </div>
        </section>
      );
      break;
  }

  return (
    <main id="main" className="wizard">
      <h1 className="wizard-title">{t('wizard.title')}</h1>
      {role && (
        <ol
          className="steps"
          aria-label={t('wizard.stepOf', { n: index + 1, total: steps.length })}
        >
          {steps.map((s, i) => (
            <li
              key={s}
              className={i === index ? 'current' : i < index ? 'done' : ''}
              aria-current={i === index ? 'step' : undefined}
            >
              <span className="step-number">{i + 1}</span> {t(`wizard.steps.${s}`)}
            </li>
          ))}
        </ol>
      )}
      <div className="card">{body}</div>
      <p className="hint">{t('wizard.leaveNote')}</p>
    </main>
  );
}

// ---------------------------------------------------------------------------------------------

function RoleStep({
  heading,
  role,
  onChoose,
}: {
  heading: ReactNode;
  role: Role | null;
  onChoose: (r: Role) => void;
}) {
  const { t } = useTranslation();
  return (
    <section className="step">
      {heading}
      <div className="choices">
        <button
          type="button"
          className={`choice${role === 'root' ? ' chosen' : ''}`}
          onClick={() => onChoose('root')}
        >
          <span className="choice-title">{t('wizard.role.rootTitle')}</span>
          <span className="choice-text">{t('wizard.role.rootText')}</span>
        </button>
        <button
          type="button"
          className={`choice${role === 'child' ? ' chosen' : ''}`}
          onClick={() => onChoose('child')}
        >
          <span className="choice-title">{t('wizard.role.childTitle')}</span>
          <span className="choice-text">{t('wizard.role.childText')}</span>
        </button>
      </div>
    </section>
  );
}

function Field({
  label,
  help,
  children,
  id,
}: {
  label: string;
  help?: string;
  id: string;
  children: ReactNode;
}) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children}
      {help && (
        <p className="help" id={`${id}-help`}>
          {help}
        </p>
      )}
    </div>
  );
}

function DbInputs({
  db,
  setDb,
  only,
}: {
  db: DbFields;
  setDb: (d: DbFields) => void;
  only?: 'password';
}) {
  const { t } = useTranslation();
  const input = (key: keyof DbFields, label: string, type = 'text', help?: string) => (
    <Field id={`db-${key}`} label={label} help={help}>
      <input
        id={`db-${key}`}
        name={key}
        type={type}
        value={db[key]}
        autoComplete={key === 'password' ? 'current-password' : 'off'}
        spellCheck={false}
        aria-describedby={help ? `db-${key}-help` : undefined}
        onChange={(e) => setDb({ ...db, [key]: e.target.value })}
      />
    </Field>
  );
  if (only === 'password') return input('password', t('wizard.db.password'), 'password');
  return (
    <div className="db-grid">
      {input('host', t('wizard.db.host'), 'text', t('wizard.db.hostHelp'))}
      {input('port', t('wizard.db.port'))}
      {input('database', t('wizard.db.database'))}
      {input('user', t('wizard.db.user'))}
      {input('password', t('wizard.db.password'), 'password')}
    </div>
  );
}

function DatabaseStep({
  heading,
  role,
  db,
  setDb,
  onBack,
  onNext,
}: {
  heading: ReactNode;
  role: Role;
  db: DbFields;
  setDb: Dispatch<SetStateAction<DbFields>>;
  onBack: () => void;
  onNext: (result: DatabaseTest) => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const [found, setFound] = useState<string | null | undefined>(undefined);
  const [result, setResult] = useState<DatabaseTest | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  // OpenMRS's own settings fill the fields once, when they are still the defaults.
  useEffect(() => {
    let alive = true;
    api.detectOpenmrs().then(
      (d) => {
        if (!alive) return;
        setFound(d.file);
        const fields = d.dbUrl ? dbFields(d.dbUrl, d.password ?? '') : null;
        // Only over the defaults: what the person typed meanwhile is theirs.
        if (fields) setDb((now) => (dbUrl(now, true) === dbUrl(EMPTY_DB, true) ? fields : now));
      },
      () => alive && setFound(null),
    );
    return () => {
      alive = false;
    };
  }, [api, setDb]);

  const test = async (create: boolean) => {
    setBusy(true);
    setError(null);
    try {
      setResult(await api.testDatabase({ dbUrl: dbUrl(db, true), create }));
    } catch (e) {
      setResult(null);
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const r = result;
  const usable =
    r !== null &&
    r.connected &&
    r.exists &&
    r.privileges?.ok === true &&
    (role === 'root' ? r.tables > 0 && !r.clinicSync : r.tables === 0);

  return (
    <section className="step">
      {heading}
      <p className="lead">
        {role === 'root' ? t('wizard.db.introRoot') : t('wizard.db.introChild')}
      </p>
      {found !== undefined && (
        <p className="hint">
          {found ? t('wizard.db.found', { file: found }) : t('wizard.db.notFound')}
        </p>
      )}
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void test(false);
        }}
      >
        <DbInputs
          db={db}
          setDb={(d) => {
            setDb(d);
            setResult(null);
          }}
        />
        <div className="actions">
          <button type="submit" disabled={busy}>
            {busy ? t('wizard.db.testing') : t('wizard.db.test')}
          </button>
        </div>
      </form>
      <div aria-live="polite">
        {error !== null && <ErrorNotice error={error} />}
        {r && (
          <DatabaseResult
            r={r}
            role={role}
            db={db.database}
            onCreate={() => void test(true)}
            busy={busy}
          />
        )}
      </div>
      <div className="actions split">
        <button type="button" onClick={onBack}>
          {t('common.back')}
        </button>
        <button type="button" className="primary" disabled={!usable} onClick={() => r && onNext(r)}>
          {t('common.next')}
        </button>
      </div>
    </section>
  );
}

function DatabaseResult({
  r,
  role,
  db,
  onCreate,
  busy,
}: {
  r: DatabaseTest;
  role: Role;
  db: string;
  onCreate: () => void;
  busy: boolean;
}) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  if (!r.connected) {
    return (
      <ErrorNotice
        heading={t('wizard.db.notConnected')}
        error={r.error ?? { kind: 'database', message: '' }}
      />
    );
  }
  const lines: { tone: 'good' | 'warning' | 'danger'; text: string }[] = [];
  lines.push({ tone: 'good', text: t('wizard.db.connected', { server: r.server ?? '' }) });
  if (!r.exists)
    lines.push({
      tone: role === 'child' ? 'warning' : 'danger',
      text: t('wizard.db.missing', { db }),
    });
  else if (r.created) lines.push({ tone: 'good', text: t('wizard.db.created', { db }) });
  else if (r.tables === 0) {
    lines.push({ tone: role === 'child' ? 'good' : 'danger', text: t('wizard.db.empty', { db }) });
  } else {
    lines.push({
      tone: role === 'child' ? 'danger' : 'good',
      text: t('wizard.db.tables', { db, count: r.tables }),
    });
    if (role === 'root') {
      lines.push(
        r.openmrs
          ? { tone: 'good', text: t('wizard.db.isOpenmrs') }
          : { tone: 'warning', text: t('wizard.db.notOpenmrs') },
      );
    }
    if (r.clinicSync) lines.push({ tone: 'danger', text: t('wizard.db.alreadyNode') });
    else if (role === 'child') lines.push({ tone: 'danger', text: t('wizard.db.notEmptyChild') });
  }
  const p = r.privileges;
  if (p?.ok) lines.push({ tone: 'good', text: t('wizard.db.privilegesOk') });
  return (
    <div className="result" data-testid="db-result">
      <ul className="checklist">
        {lines.map((l, i) => (
          <li key={i} className={`tone-${l.tone}`}>
            {l.text}
          </li>
        ))}
      </ul>
      {r.error && <ErrorNotice error={r.error} />}
      {!r.exists && role === 'child' && (
        <div className="actions">
          <button type="button" onClick={onCreate} disabled={busy}>
            {t('wizard.db.create')}
          </button>
        </div>
      )}
      {p && !p.ok && (
        <div className="notice notice-danger" role="alert" data-error-kind="privileges">
          <p className="notice-title">
            {t('wizard.db.privilegesMissing', { list: p.missing.join(', ') })}
          </p>
          <p>{t('wizard.db.privilegesWhy')}</p>
          {p.sentence && (
            <>
              <button
                type="button"
                className="link-button"
                aria-expanded={open}
                onClick={() => setOpen(!open)}
              >
                {open ? t('common.hideDetails') : t('common.details')}
              </button>
              <p className="notice-detail" hidden={!open}>
                {p.sentence}
              </p>
            </>
          )}
        </div>
      )}
    </div>
  );
}

/** A line asking again for the database password when the wizard was left and resumed. */
function PasswordAgain({ db, setDb }: { db: DbFields; setDb: (d: DbFields) => void }) {
  return (
    <div className="password-again">
      <p className="hint">{dbUrl(db, false)}</p>
      <DbInputs db={db} setDb={setDb} only="password" />
    </div>
  );
}

function NameStep({
  heading,
  openmrs,
  name,
  setName,
  db,
  setDb,
  onBack,
  onMade,
}: {
  heading: ReactNode;
  /** the database holds OpenMRS: sync it with the OpenMRS table choice */
  openmrs: boolean;
  name: string;
  setName: (n: string) => void;
  db: DbFields;
  setDb: (d: DbFields) => void;
  onBack: () => void;
  onMade: () => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const valid = NAME.test(name.trim());
  const make = async (e: FormEvent) => {
    e.preventDefault();
    if (!valid) return;
    setBusy(true);
    setError(null);
    try {
      await api.initRoot({
        dbUrl: dbUrl(db, true),
        name: name.trim(),
        preset: openmrs ? 'openmrs' : 'all',
      });
      onMade();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="step">
      {heading}
      <form onSubmit={(e) => void make(e)}>
        <Field id="node-name" label={t('wizard.name.label')} help={t('wizard.name.help')}>
          <input
            id="node-name"
            value={name}
            maxLength={40}
            aria-describedby="node-name-help"
            onChange={(e) => setName(e.target.value)}
          />
        </Field>
        <PasswordAgain db={db} setDb={setDb} />
        <div aria-live="polite">{error !== null && <ErrorNotice error={error} />}</div>
        <div className="actions split">
          <button type="button" onClick={onBack} disabled={busy}>
            {t('common.back')}
          </button>
          <button type="submit" className="primary" disabled={!valid || busy}>
            {busy ? t('wizard.name.making') : t('wizard.name.make')}
          </button>
        </div>
      </form>
    </section>
  );
}

export function PairingCodes({ ready }: { ready: boolean }) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const [codes, setCodes] = useState<PairingCode[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const make = async () => {
    setBusy(true);
    setError(null);
    try {
      const c = await api.createPairingCode({ ttlMinutes: 24 * 60 });
      setCodes((cs) => [c, ...cs]);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="pairing">
      <button
        type="button"
        className="primary"
        onClick={() => void make()}
        disabled={!ready || busy}
      >
        {ready ? t('wizard.pairing.make') : t('common.working')}
      </button>
      <div aria-live="polite">
        {error !== null && <ErrorNotice error={error} />}
        {codes.map((c) => (
          <div key={c.code} className="code-card">
            <span className="code-label">{t('wizard.pairing.code')}</span>
            <output className="code" data-testid="pairing-code">
              {c.code}
            </output>
            <span className="hint">
              {t('wizard.pairing.expires', { time: f.dateTime(c.expiresAt) })}
            </span>
            {c.fingerprint && (
              <>
                <span className="code-label">{t('wizard.pairing.fingerprint')}</span>
                <code className="code small" data-testid="own-fingerprint">
                  {c.fingerprint}
                </code>
              </>
            )}
          </div>
        ))}
      </div>
    </div>
  );
}

function PairingStep({
  heading,
  ready,
  onNext,
}: {
  heading: ReactNode;
  ready: boolean;
  onNext: () => void;
}) {
  const { t } = useTranslation();
  return (
    <section className="step">
      {heading}
      <p className="lead">{t('wizard.pairing.intro')}</p>
      <PairingCodes ready={ready} />
      <p className="hint">{t('wizard.pairing.address', { port: DEFAULT_PARENT_PORT })}</p>
      <p className="hint">{t('wizard.pairing.later')}</p>
      <div className="actions split">
        <span />
        <button type="button" className="primary" onClick={onNext} disabled={!ready}>
          {t('common.next')}
        </button>
      </div>
    </section>
  );
}

function ParentStep({
  heading,
  typed,
  setTyped,
  name,
  setName,
  code,
  onBack,
  onNext,
}: {
  heading: ReactNode;
  typed: string;
  setTyped: (s: string) => void;
  name: string;
  setName: (s: string) => void;
  code: string;
  onBack: () => void;
  onNext: (code: string, fingerprint: string | null) => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const [pairing, setPairing] = useState(code);
  const [check, setCheck] = useState<ParentCheck | null>(null);
  const [checkedUrl, setCheckedUrl] = useState<string | null>(null);
  const [same, setSame] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const url = parentUrl(typed);
  const found = check !== null && checkedUrl === url;

  const lookUp = async (e: FormEvent) => {
    e.preventDefault();
    if (!url) return;
    setBusy(true);
    setError(null);
    setCheck(null);
    setSame(false);
    try {
      setCheck(await api.checkParent({ parentUrl: url }));
      setCheckedUrl(url);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const ready =
    found &&
    NAME.test(name.trim()) &&
    pairing.trim() !== '' &&
    (check.fingerprint === null || same);

  return (
    <section className="step">
      {heading}
      <form onSubmit={(e) => void lookUp(e)}>
        <Field
          id="parent-address"
          label={t('wizard.parent.address')}
          help={t('wizard.parent.addressHelp')}
        >
          <input
            id="parent-address"
            value={typed}
            spellCheck={false}
            inputMode="url"
            aria-describedby="parent-address-help"
            onChange={(e) => setTyped(e.target.value)}
          />
        </Field>
        <div className="actions">
          <button type="submit" disabled={!url || busy}>
            {busy ? t('wizard.parent.checking') : t('wizard.parent.check')}
          </button>
        </div>
      </form>
      <div aria-live="polite">
        {error !== null && <ErrorNotice error={error} />}
        {found && (
          <div className="result" data-testid="parent-found">
            <ul className="checklist">
              <li className="tone-good">{t('wizard.parent.found', { name: check.name })}</li>
            </ul>
            {check.fingerprint ? (
              <div className="fingerprint">
                <p className="notice-title">{t('wizard.parent.fingerprint')}</p>
                <code className="code small">{check.fingerprint}</code>
                <p className="hint">{t('wizard.parent.fingerprintHelp')}</p>
                <label className="check">
                  <input
                    type="checkbox"
                    checked={same}
                    onChange={(e) => setSame(e.target.checked)}
                  />
                  {t('wizard.parent.fingerprintSame')}
                </label>
              </div>
            ) : (
              <p className="hint">{t('wizard.parent.plainHttp')}</p>
            )}
          </div>
        )}
      </div>
      <Field id="clinic-name" label={t('wizard.parent.name')} help={t('wizard.parent.nameHelp')}>
        <input
          id="clinic-name"
          value={name}
          maxLength={40}
          aria-describedby="clinic-name-help"
          onChange={(e) => setName(e.target.value)}
        />
      </Field>
      <Field id="pairing-code" label={t('wizard.parent.code')} help={t('wizard.parent.codeHelp')}>
        <input
          id="pairing-code"
          value={pairing}
          spellCheck={false}
          autoComplete="off"
          autoCapitalize="characters"
          aria-describedby="pairing-code-help"
          onChange={(e) => setPairing(e.target.value)}
        />
      </Field>
      <div className="actions split">
        <button type="button" onClick={onBack}>
          {t('common.back')}
        </button>
        <button
          type="button"
          className="primary"
          disabled={!ready}
          onClick={() => onNext(pairing.trim(), check?.fingerprint ?? null)}
        >
          {t('common.next')}
        </button>
      </div>
    </section>
  );
}

function CloneStep({
  heading,
  db,
  setDb,
  parent,
  code,
  fingerprint,
  name,
  clone,
  nodeReady,
  onBack,
  onDone,
}: {
  heading: ReactNode;
  db: DbFields;
  setDb: (d: DbFields) => void;
  parent: string;
  code: string;
  fingerprint: string | null;
  name: string;
  clone: CloneProgress | null;
  nodeReady: boolean;
  onBack: () => void;
  onDone: () => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  const [understood, setUnderstood] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [started, setStarted] = useState(false);
  const running = clone !== null && clone.phase !== 'failed' && clone.phase !== 'done';
  const done = clone?.phase === 'done';

  const start = async () => {
    setError(null);
    setStarted(true);
    try {
      await api.startClone({
        parentUrl: parent,
        code,
        dbUrl: dbUrl(db, true),
        name: name.trim(),
        ...(fingerprint ? { fingerprint } : {}),
      });
    } catch (e) {
      setError(e);
      setStarted(false);
    }
  };

  const showProgress = clone !== null && (started || running || done);
  return (
    <section className="step">
      {heading}
      {!running && !done && (
        <>
          <div className="notice notice-warning">
            <p className="notice-title">{t('wizard.clone.warningTitle', { db: db.database })}</p>
            <p>{t('wizard.clone.warningText')}</p>
            <label className="check">
              <input
                type="checkbox"
                checked={understood}
                onChange={(e) => setUnderstood(e.target.checked)}
              />
              {t('wizard.clone.understand')}
            </label>
          </div>
          <PasswordAgain db={db} setDb={setDb} />
        </>
      )}
      <div aria-live="polite">
        {error !== null && <ErrorNotice error={error} />}
        {showProgress && clone && <CloneProgressView p={clone} f={f} />}
        {clone?.phase === 'failed' && clone.error && started && (
          <>
            <ErrorNotice error={clone.error} />
            <p className="hint">{t('wizard.clone.resumeNote')}</p>
          </>
        )}
      </div>
      <div className="actions split">
        <button type="button" onClick={onBack} disabled={running || done}>
          {t('common.back')}
        </button>
        {done ? (
          // The clinic's engine opens the new node first; then the schedule can be set.
          <button type="button" className="primary" disabled={!nodeReady} onClick={onDone}>
            {nodeReady ? t('common.next') : t('common.working')}
          </button>
        ) : (
          <button
            type="button"
            className="primary"
            disabled={!understood || running}
            onClick={() => void start()}
          >
            {clone?.phase === 'failed' && started ? t('common.retry') : t('wizard.clone.start')}
          </button>
        )}
      </div>
    </section>
  );
}

function CloneProgressView({ p, f }: { p: CloneProgress; f: ReturnType<typeof useFormats> }) {
  const { t } = useTranslation();
  const fraction =
    p.phase === 'done'
      ? 1
      : p.tablesTotal > 0
        ? Math.min(0.99, p.tablesDone / p.tablesTotal)
        : undefined;
  return (
    <div className="clone-progress" data-testid="clone-progress" data-phase={p.phase}>
      <p className="notice-title">{t(`wizard.clone.phase.${p.phase}`)}</p>
      <progress max={1} value={fraction} aria-label={t('wizard.clone.progressLabel')} />
      <p className="facts-line">
        {p.tablesTotal > 0 && (
          <span>
            {t('wizard.clone.tables', {
              done: f.number(p.tablesDone),
              total: f.number(p.tablesTotal),
            })}
          </span>
        )}
        <span>{t('wizard.clone.rows', { count: p.rowsDone })}</span>
        <span>{t('wizard.clone.received', { size: f.bytes(p.bytesDone) })}</span>
        {p.phase !== 'done' && p.phase !== 'failed' && (
          <span>
            {p.etaSeconds !== null && p.etaSeconds > 0
              ? t('wizard.clone.eta', { time: f.duration(p.etaSeconds) })
              : t('wizard.clone.etaUnknown')}
          </span>
        )}
      </p>
    </div>
  );
}

function ScheduleStep({
  heading,
  status,
  onNext,
}: {
  heading: ReactNode;
  status: ApiStatus | null;
  onNext: () => void;
}) {
  const { t } = useTranslation();
  const api = useApi();
  const f = useFormats();
  // Null until the saved interval has loaded: a choice made before then would be overwritten
  // by the late answer, so the list waits for it.
  const [seconds, setSeconds] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api.getSettings().then(
      (s) => setSeconds(s.sync.intervalSeconds),
      (e: unknown) => {
        setSeconds(DEFAULT_INTERVAL);
        setError(e);
      },
    );
  }, [api]);
  const save = async () => {
    if (seconds === null) return;
    setBusy(true);
    setError(null);
    try {
      await api.updateSetting('sync.intervalSeconds', String(seconds));
      onNext();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const choices =
    seconds === null || INTERVALS.includes(seconds)
      ? INTERVALS
      : [...INTERVALS, seconds].sort((a, b) => a - b);
  return (
    <section className="step">
      {heading}
      <p className="lead">{t('wizard.schedule.intro')}</p>
      <Field id="interval" label={t('wizard.schedule.choose')}>
        <select
          id="interval"
          value={seconds ?? DEFAULT_INTERVAL}
          disabled={seconds === null}
          onChange={(e) => setSeconds(Number(e.target.value))}
        >
          {choices.map((s) => (
            <option key={s} value={s}>
              {t('wizard.schedule.every', { time: f.duration(s) })}
            </option>
          ))}
        </select>
      </Field>
      <div aria-live="polite">{error !== null && <ErrorNotice error={error} />}</div>
      <div className="actions split">
        <span />
        <button
          type="button"
          className="primary"
          disabled={busy || status === null || seconds === null}
          onClick={() => void save()}
        >
          {t('common.next')}
        </button>
      </div>
    </section>
  );
}
