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
    },
  },
  {
    // The CLI, tools, benchmarks and tests talk to a terminal.
    files: ['src/cli/**', 'bin/**', 'bench/**', 'tools/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
);
