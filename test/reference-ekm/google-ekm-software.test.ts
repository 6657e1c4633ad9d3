import { googleEkmConformance } from './google-ekm-conformance.js';

googleEkmConformance('software');
