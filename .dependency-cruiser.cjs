/**
 * The layering of OpenEKM, checked by `npm test` (npm run lint:deps). Floors, from the bottom:
 *   shared/errors.ts, shared/time.ts, shared/log.ts                       the ground floor: imports nothing of ours
 *   shared/{store,crypto,resources,ekm,access,quota,audit,hsm}, shared/config.ts    the core's libraries
 *   shared/context.ts, shared/{operations,health}                          handlers and the work they do
 *   shared/api                                                             the HTTP edge of the core: routes, pipeline
 *   functions/                                                             the deployable functions
 * Dependencies point down only; no circles; the gateway and the reference EKM (a different party) never import
 * each other.
 */
const LOWER = '^shared/(store|crypto|resources|ekm|access|quota|audit|hsm)/|^shared/config\\.ts$';
const GROUND = '^shared/(errors|time|log)\\.ts$';
const MIDDLE = '^shared/(operations|health)/|^shared/context\\.ts$';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'ground-floor-imports-nothing-of-ours',
      severity: 'error',
      from: { path: GROUND },
      to: { path: '^(shared|functions|reference-ekm)/' },
    },
    {
      name: 'core-libraries-stay-below-handlers',
      severity: 'error',
      from: { path: LOWER },
      to: { path: `${MIDDLE}|^shared/api/|^functions/` },
    },
    {
      name: 'handlers-stay-below-the-http-edge',
      severity: 'error',
      from: { path: MIDDLE },
      to: { path: '^shared/api/|^functions/' },
    },
    {
      name: 'the-core-never-imports-the-functions',
      severity: 'error',
      from: { path: '^shared/' },
      to: { path: '^functions/' },
    },
    {
      name: 'gateway-and-reference-ekm-are-separate-parties',
      severity: 'error',
      from: { path: '^(shared|functions)/' },
      to: { path: '^reference-ekm/' },
    },
    {
      name: 'reference-ekm-imports-nothing-of-the-gateway',
      severity: 'error',
      from: { path: '^reference-ekm/' },
      to: { path: '^(shared|functions|scripts|test|bench)/' },
    },
    {
      name: 'no-unresolvable-imports',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|firebase/node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
