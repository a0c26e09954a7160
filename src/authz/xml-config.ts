/**
 * The small XML documents of ownership controls and public access block:
 * validated with fast-xml-parser as src/http/xml.ts does, rendered by hand.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AuthzError } from './errors.ts';

export const S3_XML_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';
export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (name) => name === 'Rule',
});

/** The root element's children; MalformedXML for anything else. */
export function parseConfigXml(xml: string, root: string): Record<string, unknown> {
  if (xml.trim() === '' || XMLValidator.validate(xml) !== true) throw new AuthzError('MalformedXML');
  let parsed: unknown;
  try {
    parsed = parser.parse(xml);
  } catch {
    throw new AuthzError('MalformedXML');
  }
  const node = (parsed as Record<string, unknown>)[root];
  if (node === '') return {};
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw new AuthzError('MalformedXML');
  return node as Record<string, unknown>;
}
