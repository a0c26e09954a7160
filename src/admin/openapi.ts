/**
 * The admin API's OpenAPI 3.1 document, generated from ADMIN_OPERATIONS —
 * the same definitions the server validates requests with — so the
 * published spec cannot drift from the server.
 */
import { ADMIN_OPERATIONS } from './operations.ts';
import { ADMIN_PATH_PREFIX } from './paths.ts';
import { toJsonSchema } from './schema.ts';

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const [name, operation] of Object.entries(ADMIN_OPERATIONS)) {
    paths[`${ADMIN_PATH_PREFIX}${name}`] = {
      post: {
        operationId: name,
        summary: operation.summary,
        description: `Requires the permission admin:${name}. Answers ${operation.output}.`,
        security: [{ sigv4: [] }],
        requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(operation.input) } } },
        responses: {
          '200': { description: operation.output, content: { 'application/json': { schema: { type: 'object' } } } },
          default: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Talus admin API', version },
    paths,
    components: {
      securitySchemes: {
        sigv4: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'AWS Signature Version 4 with an access key whose policy grants admin:<Operation> (root has all).' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['code', 'message', 'requestId'],
          properties: { code: { type: 'string' }, message: { type: 'string' }, requestId: { type: 'string' } },
        },
      },
    },
  };
}
