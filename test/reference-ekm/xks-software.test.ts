import { xksConformance } from './xks-conformance.js';

xksConformance('software');
