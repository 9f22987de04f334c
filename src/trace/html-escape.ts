// Text from a trace (paths, the image name) is untrusted: it goes into the report's HTML only
// through these, so it renders as text and never ends an element, an attribute or a script block.

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `text` as HTML text or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * `value` as JSON to put inside a `<script type="application/json">` element: `<`, `>` and `&` become
 * \u escapes (JSON.parse reads them back unchanged), so no `</script>` or `<!--` can appear in it;
 * U+2028 and U+2029 too, so it stays valid as a JavaScript literal.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
