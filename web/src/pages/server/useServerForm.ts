import { type RefObject, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, api, type Driver, type EmailServer, errorMessage, type List } from "../../api";
import { oauthBanner } from "../../oauthBanner";
import { navigate, useLeaveGuard, useLocation } from "../../router";
import {
  type Draft,
  draftOf,
  emptyDraft,
  type FormValue,
  type Payload,
  type SecretAction,
  sameDraft,
  toPayload,
} from "../../serverForm";

export interface Banner {
  kind: "success" | "error" | "info";
  text: string;
}

/**
 * A message for the page of the server just created, which opens next. Kept until that page
 * has mounted: React may run a state initializer more than once, so reading must not clear it.
 */
let flash: { serverId: string; kind: "success"; text: string } | null = null;

/** The server's form once drivers and server are loaded: its three states and what changes them. */
export interface ServerForm {
  drivers: Driver[];
  /** The driver the draft is for. */
  driver: Driver;
  /** The server as stored; null for a new one. */
  saved: EmailServer | null;
  draft: Draft;
  dirty: boolean;
  saving: boolean;
  /** Field path ("name", "settings.port") -> what is wrong with it. */
  errors: Record<string, string>;
  formError: string | null;
  banner: Banner | null;
  /** The error summary, focused when problems are shown. */
  summaryRef: RefObject<HTMLDivElement | null>;
  setBanner: (banner: Banner | null) => void;
  setSaved: (server: EmailServer) => void;
  setGeneral: (key: "name" | "fromAddress" | "fromName", value: string) => void;
  setSetting: (key: string, value: FormValue) => void;
  setSecret: (key: string, action: SecretAction) => void;
  /** Keeps a new secret's value out of rendered state and out of the DOM's attributes. */
  setSecretValue: (key: string, value: string) => void;
  changeDriver: (driverId: string) => void;
  /** The form as a request; null (with the problems shown beside the fields) when it has some. */
  payloadOrProblems: () => Payload | null;
  showErrors: (fields: Record<string, string>, message: string) => void;
  /** Creates or saves; the server's id, or null when it was not saved. */
  save: () => Promise<string | null>;
  discard: () => void;
  /** Reads drivers and server again (after an authorization or a disconnect). */
  reload: () => Promise<void>;
}

/** Loads a server (or starts a new one) and keeps its draft, the state it started from and the saved server. */
export function useServerForm(id: string | null, canEdit: boolean): { loadError: unknown; form: ServerForm | null } {
  const location = useLocation();
  const [drivers, setDrivers] = useState<Driver[] | null>(null);
  const [saved, setSaved] = useState<EmailServer | null>(null);
  const [initial, setInitial] = useState<Draft | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  // New secret values: kept out of React state that renders, and out of the DOM's attributes.
  const secretValues = useRef<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [banner, setBanner] = useState<Banner | null>(() => {
    const fromOauth = oauthBanner(new URLSearchParams(window.location.search));
    return fromOauth ?? (flash && flash.serverId === id ? { kind: flash.kind, text: flash.text } : null);
  });
  useEffect(() => {
    if (flash?.serverId === id) flash = null;
  }, [id]);
  const [saving, setSaving] = useState(false);
  const summaryRef = useRef<HTMLDivElement>(null);

  // Only the latest load fills the form (as in useLoad). Loads can overlap: React's StrictMode
  // (development builds, which the browser tests run) runs this effect twice on mount, so two
  // loads of the same form start together; the form shows when one answers, and the other,
  // answering after the user had chosen something, replaced the draft with a fresh one. A
  // load overtaken by a newer one (or by reload) now changes nothing, not even with its error.
  const latestLoad = useRef(0);
  const load = useCallback(async () => {
    const mine = ++latestLoad.current;
    let driverList: List<Driver>;
    let server: EmailServer | null;
    try {
      [driverList, server] = await Promise.all([
        api<List<Driver>>("GET", "/api/drivers"),
        id ? api<EmailServer>("GET", `/api/email-servers/${encodeURIComponent(id)}`) : Promise.resolve(null),
      ]);
    } catch (e) {
      if (mine === latestLoad.current) throw e;
      return;
    }
    if (mine !== latestLoad.current) return;
    setDrivers(driverList.items);
    setSaved(server);
    let next: Draft;
    if (server) {
      next = draftOf(server, driverList.items.find((d) => d.id === server.driver) ?? driverList.items[0]);
    } else {
      const wanted = new URLSearchParams(window.location.search).get("driver");
      next = emptyDraft(driverList.items.find((d) => d.id === wanted) ?? driverList.items[0]);
    }
    setDraft(next);
    setInitial(next);
    secretValues.current = {};
  }, [id]);

  useEffect(() => {
    load().catch(setLoadError);
  }, [load]);

  // The OAuth outcome is shown once; a reload should not show it again.
  useEffect(() => {
    if (id && location.search.get("oauth")) void navigate(`/servers/${encodeURIComponent(id)}`, { replace: true, force: true });
  }, [id, location.search]);

  const dirty = Boolean(draft && initial && !sameDraft(draft, initial));
  useLeaveGuard(canEdit && dirty);
  // A message about the last save or authorization is out of date once the form changes.
  useEffect(() => {
    if (dirty) setBanner(null);
  }, [dirty]);

  const driver = useMemo(() => drivers?.find((d) => d.id === draft?.driver) ?? null, [drivers, draft?.driver]);

  if (!drivers || !draft || !driver) return { loadError, form: null };

  const showErrors = (fields: Record<string, string>, message: string) => {
    setErrors(fields);
    setFormError(message);
    requestAnimationFrame(() => summaryRef.current?.focus());
  };

  const payloadOrProblems = (): Payload | null => {
    const { payload, problems } = toPayload(draft, driver, secretValues.current, saved);
    if (!payload.name) problems.name = "Give the server a name, e.g. “Transactional mail”.";
    if (Object.keys(problems).length) {
      showErrors(problems, "Some fields need attention before this can go on.");
      return null;
    }
    return payload;
  };

  const save = async (): Promise<string | null> => {
    setBanner(null);
    const payload = payloadOrProblems();
    if (!payload) return null;
    setSaving(true);
    setFormError(null);
    try {
      const result = saved
        ? await api<EmailServer>("PUT", `/api/email-servers/${encodeURIComponent(saved.id)}`, payload)
        : await api<EmailServer>("POST", "/api/email-servers", payload);
      setErrors({});
      if (!saved) {
        flash = { serverId: result.id, kind: "success", text: `Created “${result.name}”.` };
        setInitial(draft);
        await navigate(`/servers/${encodeURIComponent(result.id)}`, { replace: true, force: true });
        return result.id;
      }
      const next = draftOf(result, drivers.find((d) => d.id === result.driver) ?? driver);
      secretValues.current = {};
      setSaved(result);
      setDraft(next);
      setInitial(next);
      setBanner({ kind: "success", text: `Saved “${result.name}”.` });
      return result.id;
    } catch (e) {
      if (e instanceof ApiError) showErrors(e.fields, e.message);
      else showErrors({}, errorMessage(e));
      return null;
    } finally {
      setSaving(false);
    }
  };

  return {
    loadError,
    form: {
      drivers,
      driver,
      saved,
      draft,
      dirty,
      saving,
      errors,
      formError,
      banner,
      summaryRef,
      setBanner,
      setSaved,
      // Updates build on the latest state: two quick edits in a row must both be kept.
      setGeneral: (key, value) => setDraft((d) => (d ? { ...d, [key]: value } : d)),
      setSetting: (key, value) => setDraft((d) => (d ? { ...d, settings: { ...d.settings, [key]: value } } : d)),
      setSecret: (key, action) => {
        if (action !== "replace") delete secretValues.current[key];
        setDraft((d) => (d ? { ...d, secrets: { ...d.secrets, [key]: action } } : d));
      },
      setSecretValue: (key, value) => {
        secretValues.current[key] = value;
      },
      changeDriver: (driverId) => {
        const next = drivers.find((d) => d.id === driverId);
        if (!next) return;
        const keep = { name: draft.name, fromAddress: draft.fromAddress, fromName: draft.fromName };
        secretValues.current = {};
        setErrors({});
        setDraft(saved && saved.driver === driverId ? { ...draftOf(saved, next), ...keep } : emptyDraft(next, keep));
      },
      payloadOrProblems,
      showErrors,
      save,
      discard: () => {
        if (!initial) return;
        secretValues.current = {};
        setErrors({});
        setFormError(null);
        setDraft(initial);
      },
      reload: load,
    },
  };
}
