// Lint rules: typescript-eslint's recommended set, plus the few rules that
// keep the hot paths and error handling honest.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', '.meshward/**', 'coverage/**', 'build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
      eqeqeq: ['error', 'always'],
      // zod's `z` export is its whole API as one object, which keeps every
      // part of zod in the bundle (tools/build-bundle.ts); a namespace
      // import lets the bundler drop what is not used, locales included.
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='zod'] > :matches(ImportSpecifier[imported.name='z'], ImportDefaultSpecifier)",
          message: "Import zod as a namespace (import * as z from 'zod'), so the bundle keeps only the parts used.",
        },
      ],
    },
  },
  {
    // The CLI, tools, benchmarks and tests talk to a terminal.
    files: ['src/cli/**', 'bin/**', 'bench/**', 'tools/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
);
