import { useEffect, useId, useRef, type ReactNode } from "react";

/**
 * A modal question before something that cannot be undone (delete). A
 * native <dialog>: focus moves into it and back, Escape answers no.
 */
export function Confirm({
  title,
  children,
  confirm,
  onConfirm,
  onCancel,
}: {
  title: string;
  children?: ReactNode;
  /** The button that says yes: "Delete 3 jobs". */
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (typeof d.showModal === "function") {
      if (!d.open) d.showModal();
    } else {
      d.setAttribute("open", ""); // jsdom
    }
    return () => {
      if (d.open && typeof d.close === "function") d.close();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className="confirm"
      aria-labelledby={id}
      onCancel={(e) => {
        e.preventDefault();
        onCancel();
      }}
    >
      <h2 id={id}>{title}</h2>
      {children}
      <div className="confirm__buttons">
        <button type="button" className="btn" onClick={onCancel} autoFocus>
          Keep
        </button>
        <button type="button" className="btn btn--danger" onClick={onConfirm}>
          {confirm}
        </button>
      </div>
    </dialog>
  );
}
