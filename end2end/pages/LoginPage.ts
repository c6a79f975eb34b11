import { expect, type Page } from '@playwright/test';
import { AppShell } from './AppShell';
import type { User } from '../support/accounts';

/** `/login`: the sign-in form. */
export class LoginPage {
  constructor(readonly page: Page) {}

  heading() {
    return this.page.getByRole('heading', { name: 'Sign in' });
  }

  error() {
    return this.page.getByRole('alert');
  }

  async fill(user: User): Promise<void> {
    await new AppShell(this.page).waitForHydration();
    await this.page.getByLabel('Email').fill(user.email);
    await this.page.getByLabel('Password').fill(user.password);
    await this.page.getByRole('button', { name: 'Sign in' }).click();
  }

  /** Signs in from the sign-in page and waits for the page it leads to. */
  async signIn(user: User): Promise<void> {
    await this.fill(user);
    await expect(this.page.getByTestId('user-email')).toHaveText(user.email);
    await new AppShell(this.page).waitForHydration();
  }
}

/** Opens `path` signed in as `user` (through the sign-in page it redirects to). */
export async function openAs(page: Page, user: User, path: string): Promise<void> {
  await page.goto(path);
  await new LoginPage(page).signIn(user);
  await expect(page).toHaveURL(new RegExp(`${path.replace(/[?]/g, '\\?')}$`));
}
