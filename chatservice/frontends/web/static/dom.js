// The two DOM helpers every part of the page uses: find an element by id,
// and make one with a class and text. Text goes in as text, never as HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
