// The browser bundle's entry (esbuild makes it an IIFE): see loader.js.
import { install } from './loader.js';

install(window);
