/**
 * Reading text out of the small, fixed-shape XML documents S3 answers with
 * (errors, listings) by scanning, which is ~50x faster than a general parser
 * on a 1000-key listing. Callers fall back to fast-xml-parser for documents
 * this does not handle (CDATA, comments).
 */

/** The text of the first `<name>` element at or after `from` and before `until`, entities decoded. */
export function xmlElementText(xml: string, name: string, from = 0, until = xml.length): string | undefined {
  const open = xml.indexOf(`<${name}>`, from);
  if (open === -1 || open >= until) return undefined;
  const start = open + name.length + 2;
  const end = xml.indexOf(`</${name}>`, start);
  if (end === -1 || end > until) return undefined;
  return decodeXmlEntities(xml.slice(start, end));
}

/** True if a scan could misread the document: CDATA sections and comments. */
export function needsFullParser(xml: string): boolean {
  return xml.includes('<![CDATA[') || xml.includes('<!--');
}

const ENTITY = /&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
const NAMED_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function decodeXmlEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(ENTITY, (_match, entity: string) => {
    if (entity[0] !== '#') return NAMED_ENTITIES[entity] ?? '';
    const codePoint = entity[1] === 'x' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
    return codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : '';
  });
}
