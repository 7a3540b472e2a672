import type { RefObject } from "react";
import type { DriverField } from "../../api";

/** The form's controls by field path, for the summary's links. */
const GENERAL_IDS: Record<string, string> = {
  name: "server-name",
  driver: "server-driver",
  fromAddress: "server-from-address",
  fromName: "server-from-name",
};

const GENERAL_LABELS: Record<string, string> = {
  name: "Name",
  driver: "Driver",
  fromAddress: "From address",
  fromName: "From name",
};

function controlId(path: string): string | undefined {
  if (GENERAL_IDS[path]) return GENERAL_IDS[path];
  if (path.startsWith("settings.")) return `setting-${path.slice(9)}`;
  return undefined;
}

/** What stops the save, above the form: each problem links to its field. */
export function ErrorSummary({
  errors,
  formError,
  fields,
  summaryRef,
}: {
  errors: Record<string, string>;
  formError: string | null;
  fields: DriverField[];
  summaryRef: RefObject<HTMLDivElement | null>;
}) {
  const errorList = Object.entries(errors);
  if (!formError && errorList.length === 0) return null;
  return (
    <div className="alert alert-error error-summary" role="alert" tabIndex={-1} ref={summaryRef}>
      <p>
        <strong>{formError ?? "Some fields need attention."}</strong>
      </p>
      {errorList.length > 0 && (
        <ul>
          {errorList.map(([path, message]) => {
            const target = controlId(path);
            const label = GENERAL_LABELS[path] ?? fields.find((f) => `settings.${f.key}` === path)?.label ?? path;
            return (
              <li key={path}>
                {target ? (
                  <a
                    href={`#${target}`}
                    onClick={(e) => {
                      e.preventDefault();
                      document.getElementById(target)?.focus();
                    }}
                  >
                    {label}: {message}
                  </a>
                ) : (
                  `${label}: ${message}`
                )}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
