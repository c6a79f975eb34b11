import { expect, type Page } from '@playwright/test';

/** The frame around every page: navigation, and the hydration marker. */
export class AppShell {
  constructor(readonly page: Page) {}

  async open(path: string): Promise<void> {
    await this.page.goto(path);
    await this.waitForHydration();
  }

  /** The WASM has taken over once `<body data-hydrated>` is set. */
  async waitForHydration(): Promise<void> {
    await expect(this.page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  }

  nav(name: 'Upload' | 'Jobs' | 'Admin') {
    return this.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  }

  userEmail() {
    return this.page.getByTestId('user-email');
  }

  userMerchants() {
    return this.page.getByTestId('user-merchants');
  }

  signOut() {
    return this.page.getByRole('button', { name: 'Sign out' });
  }
}
