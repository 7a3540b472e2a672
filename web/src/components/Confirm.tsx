/**
 * One modal question at a time, asked from anywhere. A <dialog> opened with showModal keeps
 * focus inside, focuses its first button (Cancel: the safe choice) and cancels on Escape.
 */
import { useEffect, useRef, useState } from "react";

export interface ConfirmOptions {
  title: string;
  message: string;
  confirmLabel: string;
  cancelLabel?: string;
  danger?: boolean;
}

interface Pending extends ConfirmOptions {
  resolve: (ok: boolean) => void;
}

let show: ((pending: Pending) => void) | null = null;

export function confirmDialog(options: ConfirmOptions): Promise<boolean> {
  return new Promise((resolve) => {
    if (!show) return resolve(window.confirm(`${options.title}\n\n${options.message}`));
    show({ ...options, resolve });
  });
}

export function ConfirmHost() {
  const [pending, setPending] = useState<Pending | null>(null);
  const ref = useRef<HTMLDialogElement>(null);
  const returnFocus = useRef<Element | null>(null);

  useEffect(() => {
    show = (p) => {
      returnFocus.current = document.activeElement;
      setPending(p);
    };
    return () => {
      show = null;
    };
  }, []);

  useEffect(() => {
    const dialog = ref.current;
    if (pending && dialog && !dialog.open) dialog.showModal();
  }, [pending]);

  const close = (ok: boolean) => {
    ref.current?.close();
    pending?.resolve(ok);
    setPending(null);
    const back = returnFocus.current;
    if (back instanceof HTMLElement && back.isConnected) back.focus();
  };

  return (
    <dialog
      ref={ref}
      className="confirm"
      aria-labelledby="confirm-title"
      aria-describedby="confirm-message"
      onCancel={(event) => {
        event.preventDefault();
        close(false);
      }}
    >
      {pending && (
        <form
          method="dialog"
          onSubmit={(event) => {
            event.preventDefault();
            close(true);
          }}
        >
          <h2 id="confirm-title">{pending.title}</h2>
          <p id="confirm-message">{pending.message}</p>
          <div className="actions">
            <button type="button" className="button" onClick={() => close(false)}>
              {pending.cancelLabel ?? "Cancel"}
            </button>
            <button type="submit" className={pending.danger ? "button danger" : "button primary"}>
              {pending.confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
