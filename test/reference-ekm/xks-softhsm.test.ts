import { xksConformance } from './xks-conformance.js';

xksConformance('softhsm');
